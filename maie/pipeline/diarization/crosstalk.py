"""Per-channel loudness and crosstalk, for recordings with one speaker per channel.

Two things go wrong with an absolute rule on a call or podcast recording. A party recorded
quietly, or through a noisy line, is missed: Silero's speech probability falls with the level,
so each channel is first brought to a common level (:func:`level_gain`). And each microphone
picks up the other party a little (bleed, crosstalk), which a level-normalised VAD then hears as
speech: a frame is bleed when it is a copy of a louder channel, that is when the two channels'
waveforms are strongly correlated at some small lag (:func:`bleed_frames`). Two people talking at
once are not correlated, so real overlap is kept however quiet one of them is.
"""

from __future__ import annotations

import numpy as np

__all__ = ["FRAME_S", "bleed_frames", "frame_db", "level_gain"]

SAMPLE_RATE = 16000
#: Loudness frames, in seconds (20 ms).
FRAME_S = 0.02
_FRAME = round(FRAME_S * SAMPLE_RATE)
#: Correlation blocks (100 ms) and the largest lag searched (20 ms: a few metres of air).
_BLOCK = 1600
_MAX_LAG = 320
#: Frames quieter than this are digital silence (a muted channel), not a noise floor.
_DIGITAL_SILENCE_DB = -90.0
#: Most gain given to a quiet channel, in dB (beyond this it is hiss, not a quiet talker).
_MAX_GAIN_DB = 40.0


def frame_db(samples: np.ndarray) -> np.ndarray:
    """Loudness of each 20 ms frame in dBFS (mean power)."""
    n = len(samples) // _FRAME
    frames = samples[: n * _FRAME].reshape(n, _FRAME).astype(np.float64)
    return np.asarray(10 * np.log10(np.mean(frames**2, axis=1) + 1e-12))


def level_gain(loudness: np.ndarray, target_dbfs: float) -> float:
    """Gain that brings a channel's loud frames (95th percentile, muted frames aside) to the target.

    Args:
        loudness: the channel's :func:`frame_db`.
        target_dbfs: where its loud frames should end up.

    Returns:
        A linear factor, at most +40 dB; 1 for a muted channel.
    """
    live = loudness[loudness > _DIGITAL_SILENCE_DB]
    if len(live) == 0:
        return 1.0
    change = min(target_dbfs - float(np.percentile(live, 95)), _MAX_GAIN_DB)
    return float(10 ** (change / 20))


def _block_coherence(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Largest normalised cross-correlation within +-20 ms, per 100 ms block."""
    n = min(len(a), len(b)) // _BLOCK
    x = a[: n * _BLOCK].reshape(n, _BLOCK).astype(np.float64)
    y = b[: n * _BLOCK].reshape(n, _BLOCK).astype(np.float64)
    size = 2 * _BLOCK
    product = np.fft.irfft(np.fft.rfft(x, size, axis=1) * np.conj(np.fft.rfft(y, size, axis=1)), size, axis=1)
    lags = np.concatenate([product[:, : _MAX_LAG + 1], product[:, -_MAX_LAG:]], axis=1)
    scale = np.sqrt((x**2).sum(axis=1) * (y**2).sum(axis=1)) + 1e-12
    return np.asarray(np.abs(lags).max(axis=1) / scale)


def bleed_frames(
    channels: np.ndarray, index: int, loudness: np.ndarray, min_coherence: float, louder_db: float
) -> np.ndarray:
    """Frames of channel ``index`` that are another channel's speech leaking in.

    Args:
        channels: ``(channels, samples)`` float audio.
        index: the channel judged.
        loudness: ``(channels, frames)`` from :func:`frame_db`.
        min_coherence: correlation from which a block is a copy (the default 0.5: a copy
            scored a median of 0.74-0.96 whether 2, 5 or 20 ms late and 6-20 dB down, two
            people talking at once at most 0.38).
        louder_db: how much louder the source channel must be for the copy to be its bleed.

    Returns:
        A boolean per frame of ``loudness``.
    """
    frames = loudness.shape[1]
    bleed = np.zeros(frames, bool)
    per_block = _BLOCK // _FRAME
    for other in range(len(channels)):
        if other == index:
            continue
        coherent = np.repeat(_block_coherence(channels[index], channels[other]) >= min_coherence, per_block)
        coherent = np.pad(coherent[:frames], (0, max(0, frames - len(coherent))))
        bleed |= coherent & (loudness[other] >= loudness[index] + louder_db)
    return bleed
