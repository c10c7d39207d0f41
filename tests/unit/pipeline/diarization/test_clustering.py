"""The speaker-count rules of the embedded backend, on synthetic voices with known similarities.

Synthetic windows stand in for GE2E embeddings (a test double for the encoder's output, not for
the clustering): each voice is a unit vector sharing a common component with the others (GE2E
vectors are all non-negative, so even different voices score about 0.5-0.7), and each window is
its voice plus noise, scoring about 0.88 against its voice's mean, as 1 s GE2E windows do.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("sklearn")

from maie.pipeline.diarization.base import SpeakerCount
from maie.pipeline.diarization.clustering import ClusterParams, cluster

DIMS = 256
#: Seconds of speech each window adds (1 s windows every 0.4 s).
HOP_S = 0.4


def unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=-1, keepdims=True)


class Voices:
    """Voices whose mean similarity to a shared base is controlled, and windows of them."""

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)
        self.base = unit(self.rng.normal(size=DIMS))

    def voice(self, likeness: float, near: np.ndarray | None = None) -> np.ndarray:
        """A voice whose cosine to ``near`` (default: the shared base) is about ``likeness``."""
        anchor = self.base if near is None else near
        own = self.rng.normal(size=DIMS)
        own -= (own @ anchor) * anchor
        return unit(likeness * anchor + np.sqrt(1 - likeness**2) * unit(own))

    def windows(self, voice: np.ndarray, seconds: float) -> np.ndarray:
        count = round(seconds / HOP_S)
        noise = unit(self.rng.normal(size=(count, DIMS))) * 0.54
        return unit(voice + noise)


def run(parts: list[np.ndarray], speakers: SpeakerCount | None = None, **params):
    embeddings = np.concatenate(parts)
    truth = np.concatenate([np.full(len(p), n) for n, p in enumerate(parts)])
    result = cluster(
        embeddings, speakers or SpeakerCount(), ClusterParams(**params), np.full(len(embeddings), HOP_S)
    )
    return result, truth


def pure(labels: np.ndarray, truth: np.ndarray) -> bool:
    """Every cluster holds one true voice only."""
    return all(len(set(truth[labels == c])) == 1 for c in set(labels.tolist()))


class TestAutomaticCount:
    def test_three_voices_of_different_lengths_are_three_speakers(self):
        """Unequal shares (20, 12 and 6 s) do not hide the smallest voice."""
        v = Voices()
        result, truth = run([v.windows(v.voice(0.75), s) for s in (20, 12, 6)])
        assert (result.count, result.estimated) == (3, 3)
        assert pure(result.labels, truth)

    def test_one_voice_is_one_speaker(self):
        """A minute of one voice stays one speaker: no eigengap-style forced split."""
        v = Voices()
        result, _ = run([v.windows(v.voice(0.75), 60)])
        assert result.count == 1

    def test_a_short_but_clearly_different_voice_is_kept(self):
        """3 s of a voice unlike the others is a speaker, not noise."""
        v = Voices()
        parts = [v.windows(v.voice(0.75), 25), v.windows(v.voice(0.75), 20), v.windows(v.voice(0.2), 3)]
        result, truth = run(parts)
        assert result.count == 3
        assert pure(result.labels, truth)

    def test_a_short_stretch_close_to_a_voice_joins_it(self):
        """3 s that sound like a known voice in another style (cosine 0.85) are that voice."""
        v = Voices()
        main = v.voice(0.75)
        result, truth = run([v.windows(main, 30), v.windows(v.voice(0.85, near=main), 3)])
        assert result.count == 1
        assert set(truth[result.labels == result.labels[0]]) == {0, 1}

    def test_too_little_speech_is_never_a_speaker(self):
        """Under a second and a half, even a very different voice is absorbed."""
        v = Voices()
        result, _ = run([v.windows(v.voice(0.75), 20), v.windows(v.voice(0.2), 1.2)])
        assert result.count == 1

    def test_merge_similarity_decides_between_two_long_close_voices(self):
        """Two long voices at cosine 0.85 are two speakers, or one when the threshold is lower."""
        v = Voices()
        a = v.voice(0.75)
        parts = [v.windows(a, 20), v.windows(v.voice(0.85, near=a), 20)]
        result, truth = run(parts)
        assert result.count == 2
        assert pure(result.labels, truth)
        assert run(parts, merge_similarity=0.8)[0].count == 1

    def test_long_recordings_are_seeded_on_a_sample(self):
        """Past ``max_seed_windows`` the seed sees an even sample; the others still find their voice."""
        v = Voices()
        parts = [v.windows(v.voice(0.7), s) for s in (200, 150, 100)]
        result, truth = run(parts, max_seed_windows=300)
        assert result.count == 3
        assert pure(result.labels, truth)


class TestRequestedCounts:
    def test_num_speakers_above_what_the_audio_shows_is_honoured_with_the_estimate(self):
        v = Voices()
        result, _ = run(
            [v.windows(v.voice(0.75), 15) for _ in range(2)], SpeakerCount.checked(num_speakers=4)
        )
        assert (result.count, result.estimated) == (4, 2)

    def test_num_speakers_below_what_the_audio_shows_merges_the_closest(self):
        v = Voices()
        a = v.voice(0.6)
        parts = [v.windows(a, 15), v.windows(v.voice(0.8, near=a), 15), v.windows(v.voice(0.6), 15)]
        result, truth = run(parts, SpeakerCount.checked(num_speakers=2))
        assert (result.count, result.estimated) == (2, 3)
        assert result.labels[truth == 0][0] == result.labels[truth == 1][0]

    def test_max_speakers_caps_the_count(self):
        v = Voices()
        result, _ = run([v.windows(v.voice(0.6), 10) for _ in range(4)], SpeakerCount.checked(max_speakers=2))
        assert result.count == 2

    def test_min_speakers_stops_merging(self):
        v = Voices()
        a = v.voice(0.75)
        parts = [v.windows(a, 20), v.windows(v.voice(0.85, near=a), 20)]
        assert run(parts, merge_similarity=0.8)[0].count == 1
        assert run(parts, SpeakerCount.checked(min_speakers=2), merge_similarity=0.8)[0].count == 2

    def test_an_embedding_with_no_voice_in_it_does_not_break_the_clustering(self):
        """A zero vector (cosine undefined) joins a voice instead of raising in scikit-learn."""
        v = Voices()
        parts = [v.windows(v.voice(0.75), 10), v.windows(v.voice(0.75), 10)]
        parts[0][3] = 0.0
        assert run(parts)[0].count == 2
        silent = cluster(np.zeros((5, DIMS)), SpeakerCount(), ClusterParams())
        assert silent.count == 1

    def test_no_embeddings_no_speakers_and_one_embedding_one(self):
        empty = cluster(np.zeros((0, DIMS)), SpeakerCount(), ClusterParams())
        assert (empty.count, empty.estimated, len(empty.labels)) == (0, 0, 0)
        one = cluster(unit(np.ones((1, DIMS))), SpeakerCount.checked(num_speakers=3), ClusterParams())
        assert (one.count, list(one.labels)) == (1, [0])
