"""Speaker embeddings into speakers: a fine first grouping, merged by rules on mean voices.

1. **Seed**: average-linkage agglomerative clustering (scikit-learn, cosine distance) stops at
   ``seed_similarity``, well below what one voice scores against itself, so it splits speakers
   into many small groups but rarely puts two voices in one.
2. **Merge**: groups are merged, smallest first, while any of them is not a speaker by these
   rules on its *mean voice* (the normalised mean of its embeddings) and its speech:

   - with ``distinct_speaker_s`` of speech or more, it needs a mean voice less similar than
     ``merge_similarity`` to every other group's;
   - with less, it must sound clearly different: less similar than ``short_speaker_similarity``;
   - with under ``min_speaker_s``, it is never a speaker of its own.

   GE2E voices drift with speaking style, so a stretch of a few seconds often lands far from its
   speaker's main group; a real speaker who talks little sounds further from everyone else than
   that. The thresholds were set on the assembled tuning conversations and single-reader clips:
   same-voice groups of a few seconds scored 0.78-0.93, short real speakers 0.49-0.72, and the
   closest real pair (``pyannote/sample.wav``) 0.85; every tuning count holds for a
   ``merge_similarity`` from 0.87 to 0.90, and 0.89 sits in the middle.
3. **Refine**: every embedding moves to the group whose mean voice it is closest to, and the
   merge rules run again, a few rounds, so the result does not depend on the seed's greedy path.

A requested count is honoured afterwards: ``max_speakers`` (or ``num_speakers``) merges the most
similar groups until it holds; ``num_speakers`` or ``min_speakers`` above what was found cuts the
seed's tree at that many groups instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec
import numpy as np

if TYPE_CHECKING:
    from maie.pipeline.diarization.base import SpeakerCount

__all__ = ["ClusterParams", "Clustering", "cluster"]

#: Rounds of reassign-to-nearest within one refinement (it converges in two or three).
_REASSIGN_ITERATIONS = 10
#: Norm under which an embedding holds no voice at all.
_EMPTY_NORM = 1e-6


class ClusterParams(msgspec.Struct, frozen=True, kw_only=True):
    """Clustering knobs; every field is recorded in the diarization version."""

    #: Average-linkage similarity at which the first, deliberately fine grouping stops.
    seed_similarity: float = 0.70
    #: Two groups with enough speech whose mean voices are at least this similar are one speaker.
    merge_similarity: float = 0.89
    #: Speech, in seconds, from which a group is judged by ``merge_similarity`` alone.
    distinct_speaker_s: float = 6.0
    #: A group with less speech stays a speaker only if its mean voice is less similar than this.
    short_speaker_similarity: float = 0.75
    #: A group with less speech than this, in seconds, is never a speaker of its own.
    min_speaker_s: float = 1.5
    #: Reassign-and-merge rounds after the first merging.
    refine_rounds: int = 3
    #: Largest count the rules may find when no maximum is given.
    auto_max_speakers: int = 10
    #: Most embeddings the seed grouping sees (evenly spaced; the others join their nearest
    #: group): its memory grows with the square of this.
    max_seed_windows: int = 2000


class Clustering(msgspec.Struct, frozen=True, kw_only=True):
    """Which cluster each embedding is in, and what the data said about the count."""

    labels: np.ndarray
    #: Clusters used.
    count: int
    #: What the rules found within the allowed range, before a fixed or minimum count.
    estimated: int


def _unit(rows: np.ndarray) -> np.ndarray:
    return np.asarray(rows / np.maximum(np.linalg.norm(rows, axis=-1, keepdims=True), 1e-12))


def _dense(labels: np.ndarray) -> np.ndarray:
    return np.asarray(np.unique(labels, return_inverse=True)[1])


def _voiced(embeddings: np.ndarray) -> np.ndarray:
    """Unit rows; a zero row (an encoder output with no voice in it) becomes the mean voice.

    Cosine distances are undefined for a zero vector and scikit-learn refuses them.
    """
    norms = np.linalg.norm(embeddings, axis=1)
    empty = norms < _EMPTY_NORM
    if not empty.any():
        return embeddings
    rows = np.array(embeddings, np.float64)
    rows[empty] = _unit(rows[~empty].mean(axis=0)) if not empty.all() else 1 / np.sqrt(rows.shape[1])
    return _unit(rows)


def _nearest(embeddings: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Every embedding's closest mean voice among the groups of ``labels``."""
    ids = np.unique(labels)
    means = _unit(np.stack([embeddings[labels == i].mean(axis=0) for i in ids]))
    return np.asarray(ids[np.argmax(embeddings @ means.T, axis=1)])


def _agglomerate(embeddings: np.ndarray, params: ClusterParams, count: int | None = None) -> np.ndarray:
    """Average-linkage groups: stopped at ``seed_similarity``, or cut at ``count`` groups."""
    from sklearn.cluster import AgglomerativeClustering  # noqa: PLC0415 - optional extra

    n = len(embeddings)
    sample = np.unique(np.linspace(0, n - 1, min(n, params.max_seed_windows)).round().astype(int))
    if count is None:
        model = AgglomerativeClustering(
            n_clusters=None, metric="cosine", linkage="average", distance_threshold=1 - params.seed_similarity
        )
    else:
        model = AgglomerativeClustering(
            n_clusters=min(count, len(sample)), metric="cosine", linkage="average"
        )
    labels = np.full(n, -1)
    labels[sample] = model.fit_predict(embeddings[sample])
    if len(sample) < n:
        rest = labels < 0
        ids = np.unique(labels[~rest])
        means = _unit(np.stack([embeddings[labels == i].mean(axis=0) for i in ids]))
        labels[rest] = ids[np.argmax(embeddings[rest] @ means.T, axis=1)]
    return _dense(labels)


def _merge(
    embeddings: np.ndarray, labels: np.ndarray, covered_s: np.ndarray, floor: int, params: ClusterParams
) -> np.ndarray:
    """Merge groups, smallest first, while one is not a speaker by the rules (see module doc)."""
    labels = _dense(labels)
    sums = np.stack([embeddings[labels == i].sum(axis=0) for i in range(labels.max() + 1)]).astype(np.float64)
    speech = np.array([covered_s[labels == i].sum() for i in range(len(sums))])
    alive = np.ones(len(sums), bool)
    means = _unit(sums)
    similar = means @ means.T
    np.fill_diagonal(similar, -np.inf)
    while alive.sum() > floor:
        closest = np.where(alive, similar.max(axis=1), -np.inf)
        needed = np.where(
            speech >= params.distinct_speaker_s,
            params.merge_similarity,
            np.where(speech >= params.min_speaker_s, params.short_speaker_similarity, -np.inf),
        )
        offending = np.flatnonzero(alive & (closest >= needed))
        if len(offending) == 0:
            break
        small = int(offending[np.argmin(speech[offending])])
        into = int(np.argmax(similar[small]))
        sums[into] += sums[small]
        speech[into] += speech[small]
        alive[small] = False
        labels[labels == small] = into
        similar[small, :] = similar[:, small] = -np.inf
        row = _unit(sums) @ _unit(sums[into])
        row[~alive] = -np.inf
        row[into] = -np.inf
        similar[into, :] = similar[:, into] = row
    return _dense(labels)


def _merge_to(embeddings: np.ndarray, labels: np.ndarray, count: int) -> np.ndarray:
    """Merge the two most similar groups until at most ``count`` remain."""
    labels = _dense(labels)
    while labels.max() + 1 > count:
        means = _unit(np.stack([embeddings[labels == i].mean(axis=0) for i in range(labels.max() + 1)]))
        similar = means @ means.T
        np.fill_diagonal(similar, -np.inf)
        a, b = np.unravel_index(np.argmax(similar), similar.shape)
        labels = _dense(np.where(labels == b, a, labels))
    return labels


def _refine(embeddings: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Move every embedding to its nearest mean voice until nothing moves."""
    for _ in range(_REASSIGN_ITERATIONS):
        moved = _dense(_nearest(embeddings, labels))
        if np.array_equal(moved, labels):
            break
        labels = moved
    return labels


def _settle(embeddings: np.ndarray, covered_s: np.ndarray, floor: int, params: ClusterParams) -> np.ndarray:
    labels = _merge(embeddings, _agglomerate(embeddings, params), covered_s, floor, params)
    for _ in range(params.refine_rounds):
        again = _merge(embeddings, _refine(embeddings, labels), covered_s, floor, params)
        if np.array_equal(again, labels):
            break
        labels = again
    return labels


def _exactly(embeddings: np.ndarray, found: np.ndarray, count: int, params: ClusterParams) -> np.ndarray:
    """``count`` groups (fewer only if the embeddings cannot make more distinct ones)."""
    if found.max() + 1 >= count:
        return _merge_to(embeddings, found, count)
    return _refine(embeddings, _agglomerate(embeddings, params, count))


def cluster(
    embeddings: np.ndarray, speakers: SpeakerCount, params: ClusterParams, covered_s: np.ndarray | None = None
) -> Clustering:
    """Group L2-normalised embeddings (one per window) into speakers.

    Args:
        embeddings: ``(windows, dims)`` unit vectors.
        speakers: the requested counts; ``num_speakers`` fixes the count (capped at the number
            of embeddings), otherwise it is found within ``[min_speakers, max_speakers]``.
        params: the rules' thresholds.
        covered_s: speech each window adds to its group, in seconds (default: 1 each).

    Returns:
        The labels, the count used and the count the rules found (so the caller can warn when
        a fixed count asks for more speakers than the audio shows).
    """
    n = len(embeddings)
    if n == 0:
        return Clustering(labels=np.zeros(0, int), count=0, estimated=0)
    embeddings = _voiced(embeddings)
    covered = np.ones(n) if covered_s is None else covered_s
    low, high = speakers.bounds(default_max=params.auto_max_speakers)
    if speakers.num_speakers is None and speakers.max_speakers is None:
        high = params.auto_max_speakers
    floor = 1 if speakers.num_speakers is not None else low
    found = np.zeros(n, int) if n == 1 else _settle(embeddings, covered, floor, params)
    if speakers.num_speakers is None:
        found = _merge_to(embeddings, found, high)
    estimated = int(found.max()) + 1
    wanted = speakers.num_speakers if speakers.num_speakers is not None else max(low, estimated)
    wanted = min(wanted, n)
    labels = found if wanted == estimated else _exactly(embeddings, found, wanted, params)
    return Clustering(labels=labels, count=int(labels.max()) + 1, estimated=estimated)
