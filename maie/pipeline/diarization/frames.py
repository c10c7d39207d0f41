"""From speech regions and clustered windows to speaker turns, on a 10 ms frame grid.

Windows never cross a speech region's edge, so every turn starts and ends at a VAD boundary or
where the voting between the windows that cover a frame changes its winner. Each window votes
for its cluster on the frames it covers, weighted by how sure it is (see :func:`vote_weights`);
a frame takes the cluster with most weight. Runs shorter
than ``min_turn_s`` inside a region are absorbed by their longer neighbour (a turn that short is
more often a window straddling a change than a real turn), which is the re-segmentation step.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from maie.schemas import SpeakerTurn

if TYPE_CHECKING:
    from maie.pipeline.diarization.vad import SpeechRegion

__all__ = ["FRAMES_PER_SECOND", "Window", "frame_labels", "plan_windows", "turns_from_frames", "vote_weights"]

FRAMES_PER_SECOND = 100
#: How sharply a window's vote fades as its voice moves away from its cluster's mean voice.
VOTE_SHARPNESS = 20.0

#: A window: first frame and length in frames.
Window = tuple[int, int]


def plan_windows(
    regions: list[SpeechRegion], window_s: float, hop_s: float, min_window_s: float
) -> list[Window]:
    """Windows of ``window_s`` every ``hop_s`` inside each region; a shorter region is one window.

    The last window of a region ends at the region's end, so its tail is covered. Regions
    shorter than ``min_window_s`` get a window of ``min_window_s`` centred on them (clipped at 0),
    because the encoder needs some context to say anything.
    """
    size, hop, least = (round(s * FRAMES_PER_SECOND) for s in (window_s, hop_s, min_window_s))
    windows: list[Window] = []
    for region in regions:
        first, last = round(region.start * FRAMES_PER_SECOND), round(region.end * FRAMES_PER_SECOND)
        length = last - first
        if length <= size:
            if length < least:
                first, length = max(0, (first + last - least) // 2), least
            windows.append((first, length))
            continue
        starts = list(range(first, last - size + 1, hop))
        if starts[-1] != last - size:
            starts.append(last - size)
        windows.extend((s, size) for s in starts)
    return windows


def vote_weights(embeddings: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Each window's vote: ``exp(20 (cos - 1))`` of its embedding and its cluster's mean voice.

    A window that straddles a change of speaker, or holds two voices at once, sits between mean
    voices and counts for less than a clean one; and a frame covered by two windows that
    disagree goes to the surer one rather than to whichever cluster has the lower number.
    """
    if len(labels) == 0:
        return np.zeros(0)
    means = np.stack([embeddings[labels == i].mean(axis=0) for i in range(int(labels.max()) + 1)])
    means /= np.maximum(np.linalg.norm(means, axis=1, keepdims=True), 1e-12)
    closeness = np.einsum("ij,ij->i", embeddings, means[labels])
    return np.asarray(np.exp(VOTE_SHARPNESS * (closeness - 1.0)))


def frame_labels(
    windows: list[Window],
    labels: np.ndarray,
    n_frames: int,
    regions: list[SpeechRegion],
    weights: np.ndarray | None = None,
) -> np.ndarray:
    """The winning cluster of every frame inside a region; -1 outside speech.

    ``weights`` are the windows' votes (default: 1 each).
    """
    count = int(labels.max()) + 1 if len(labels) else 0
    votes = np.zeros((n_frames, max(count, 1)), np.float64)
    weight = np.ones(len(labels)) if weights is None else weights
    for (first, length), cluster, vote in zip(windows, labels, weight, strict=True):
        votes[first : first + length, cluster] += vote
    result = np.full(n_frames, -1, np.int64)
    for region in regions:
        a, b = round(region.start * FRAMES_PER_SECOND), min(n_frames, round(region.end * FRAMES_PER_SECOND))
        result[a:b] = np.argmax(votes[a:b], axis=1)
    return result


def _absorb_short(run_labels: list[int], run_lengths: list[int], least: int) -> tuple[list[int], list[int]]:
    labels, lengths = list(run_labels), list(run_lengths)
    while len(labels) > 1:
        shortest = min(range(len(labels)), key=lambda i: lengths[i])
        if lengths[shortest] >= least:
            break
        left = lengths[shortest - 1] if shortest > 0 else -1
        right = lengths[shortest + 1] if shortest + 1 < len(labels) else -1
        into = shortest - 1 if left >= right else shortest + 1
        lengths[into] += lengths[shortest]
        del lengths[shortest], labels[shortest]
        # Neighbours that now agree become one run.
        merged_labels: list[int] = []
        merged_lengths: list[int] = []
        for lab, n in zip(labels, lengths, strict=True):
            if merged_labels and merged_labels[-1] == lab:
                merged_lengths[-1] += n
            else:
                merged_labels.append(lab)
                merged_lengths.append(n)
        labels, lengths = merged_labels, merged_lengths
    return labels, lengths


def turns_from_frames(
    frames: np.ndarray, regions: list[SpeechRegion], min_turn_s: float
) -> list[SpeakerTurn]:
    """Turns (label ``C<cluster>``, to be relabelled) from frame labels, region by region."""
    least = round(min_turn_s * FRAMES_PER_SECOND)
    turns: list[SpeakerTurn] = []
    for region in regions:
        a, b = (
            round(region.start * FRAMES_PER_SECOND),
            min(len(frames), round(region.end * FRAMES_PER_SECOND)),
        )
        if b <= a:
            continue
        segment = frames[a:b]
        changes = np.flatnonzero(np.diff(segment)) + 1
        bounds = [0, *changes.tolist(), len(segment)]
        labels = [int(segment[i]) for i in bounds[:-1]]
        lengths = [bounds[i + 1] - bounds[i] for i in range(len(labels))]
        labels, lengths = _absorb_short(labels, lengths, least)
        position = a
        for lab, n in zip(labels, lengths, strict=True):
            start = region.start if position == a else position / FRAMES_PER_SECOND
            end = region.end if position + n == b else (position + n) / FRAMES_PER_SECOND
            turns.append(
                SpeakerTurn(start=round(float(start), 3), end=round(float(end), 3), speaker=f"C{lab}")
            )
            position += n
    return turns
