"""Speaker embeddings into speakers: spectral clustering with an eigengap speaker count.

The affinity recipe is the one of Wang et al., "Speaker Diarization with LSTM" (ICASSP 2018),
which was made for GE2E d-vectors: cosine similarities, each row keeping only its strongest
share (the rest damped), symmetrised, diffused (``A @ A.T``) and row-normalised. The number of
speakers is the largest gap between consecutive eigenvalues of the normalised Laplacian within
the allowed range; the rows of the first eigenvectors are then grouped by k-means
(scikit-learn). Because an eigengap cannot say "one speaker", clusters whose mean voices are
closer than ``merge_similarity`` are merged afterwards when the count is automatic.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec
import numpy as np

if TYPE_CHECKING:
    from maie.pipeline.diarization.base import SpeakerCount

__all__ = ["ClusterParams", "Clustering", "cluster"]


class ClusterParams(msgspec.Struct, frozen=True, kw_only=True):
    """Clustering knobs; every field is recorded in the diarization version."""

    #: Share of each row's similarities kept at full strength in the affinity.
    keep_share: float = 0.15
    #: Factor applied to the other similarities.
    damping: float = 0.01
    #: Least cosine similarity of two clusters' mean embeddings for them to be merged.
    merge_similarity: float = 0.89
    #: A cluster whose windows cover less speech than this, in seconds, joins its nearest
    #: cluster (GE2E drifts with speaking style: a short stretch is rarely a new voice).
    min_speaker_s: float = 4.0
    #: Largest count the eigengap may choose when no maximum is given.
    auto_max_speakers: int = 10


class Clustering(msgspec.Struct, frozen=True, kw_only=True):
    """Which cluster each embedding is in, and what the data said about the count."""

    labels: np.ndarray
    #: Clusters used.
    count: int
    #: What the eigengap (and merging) chose within the allowed range, before any fixed count.
    estimated: int


def _affinity(embeddings: np.ndarray, params: ClusterParams) -> np.ndarray:
    n = len(embeddings)
    similarity = np.clip(embeddings @ embeddings.T, 0.0, 1.0)
    keep = min(n, max(2, int(np.ceil(params.keep_share * n))))
    threshold = np.sort(similarity, axis=1)[:, -keep][:, None]
    affinity = np.where(similarity >= threshold, similarity, similarity * params.damping)
    affinity = np.maximum(affinity, affinity.T)
    affinity = affinity @ affinity.T
    affinity /= np.maximum(affinity.max(axis=1, keepdims=True), 1e-12)
    return np.asarray((affinity + affinity.T) / 2)


def _spectrum(affinity: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    degree = affinity.sum(axis=1)
    scale = 1.0 / np.sqrt(np.maximum(degree, 1e-12))
    laplacian = np.eye(len(affinity)) - scale[:, None] * affinity * scale[None, :]
    return np.linalg.eigh(laplacian)


def _kmeans(vectors: np.ndarray, k: int) -> np.ndarray:
    from sklearn.cluster import KMeans  # noqa: PLC0415 - optional extra, loaded with the backend

    rows = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    return np.asarray(KMeans(k, n_init=10, random_state=0).fit_predict(rows))


def _merge_close(
    embeddings: np.ndarray, labels: np.ndarray, covered_s: np.ndarray, floor: int, params: ClusterParams
) -> np.ndarray:
    """Merge clusters into their nearest while one is too small or two sound alike.

    ``covered_s[i]`` is the speech, in seconds, that window ``i`` adds to its cluster.
    """
    labels = labels.copy()
    while len(ids := np.unique(labels)) > floor:
        means = np.stack([embeddings[labels == i].mean(axis=0) for i in ids])
        means /= np.maximum(np.linalg.norm(means, axis=1, keepdims=True), 1e-12)
        close = means @ means.T
        np.fill_diagonal(close, -1.0)
        sizes = np.array([covered_s[labels == i].sum() for i in ids])
        smallest = int(np.argmin(sizes))
        if sizes[smallest] < params.min_speaker_s:
            a, b = int(np.argmax(close[smallest])), smallest
        else:
            a, b = (int(x) for x in np.unravel_index(np.argmax(close), close.shape))
            if close[a, b] < params.merge_similarity:
                break
        labels[labels == ids[b]] = ids[a]
    _, dense = np.unique(labels, return_inverse=True)
    return np.asarray(dense)


def cluster(
    embeddings: np.ndarray, speakers: SpeakerCount, params: ClusterParams, covered_s: np.ndarray | None = None
) -> Clustering:
    """Group L2-normalised embeddings (one per window) into speakers.

    ``covered_s`` is the speech each window adds to its cluster, in seconds (default: 1 each).

    ``num_speakers`` fixes the count (capped at the number of embeddings); otherwise the count is
    estimated within ``[min_speakers, max_speakers]``. The estimate is always returned so the
    caller can warn when a fixed count asks for more speakers than the audio shows.
    """
    n = len(embeddings)
    if n == 0:
        return Clustering(labels=np.zeros(0, int), count=0, estimated=0)
    low, high = speakers.bounds(default_max=params.auto_max_speakers)
    if n < 3:  # noqa: PLR2004 - too few windows for a spectrum: one speaker unless told otherwise
        k = min(n, max(low, 1))
        labels = np.arange(n) % k
        return Clustering(labels=labels, count=k, estimated=1)
    values, vectors = _spectrum(_affinity(embeddings, params))
    search_low, search_high = (
        max(1, speakers.min_speakers or 1),
        min(n - 1, max(high, low), params.auto_max_speakers if speakers.max_speakers is None else high),
    )
    gaps = np.diff(values[: search_high + 1])
    estimated = (
        int(np.argmax(gaps[search_low - 1 : search_high])) + search_low
        if search_high >= search_low
        else search_low
    )
    covered = np.ones(n) if covered_s is None else covered_s
    auto = np.zeros(n, int)
    if estimated > 1:
        auto = _merge_close(
            embeddings,
            _kmeans(vectors[:, :estimated], estimated),
            covered,
            speakers.min_speakers or 1,
            params,
        )
    estimated = int(auto.max()) + 1
    if speakers.num_speakers is None:
        return Clustering(labels=auto, count=estimated, estimated=estimated)
    k = min(speakers.num_speakers, n)
    labels = _kmeans(vectors[:, :k], k) if k > 1 else np.zeros(n, int)
    return Clustering(labels=labels, count=k, estimated=estimated)
