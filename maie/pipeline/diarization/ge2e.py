"""The GE2E speaker encoder of the ``resemblyzer`` wheel, run in NumPy.

Resemblyzer's ``VoiceEncoder`` is a 3-layer LSTM (40 mel bands in, 256 units) whose last hidden
state goes through a linear layer and a ReLU, then is L2-normalised: a 256-dimensional voice
embedding. Its input is a *power* (not log) mel spectrogram of 25 ms Hann windows every 10 ms, as
``librosa.feature.melspectrogram`` computes it (Slaney mel scale and area normalisation). This
module reproduces both with NumPy and the weights read from ``pretrained.pt`` by
:mod:`~maie.pipeline.diarization.torch_file`, so the ``embedded`` backend needs no torch and no
librosa; ``scripts/compare_ge2e.py`` checks the embeddings against PyTorch's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from maie.pipeline.diarization.torch_file import load_tensors

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["FRAME_HOP_S", "SAMPLE_RATE", "Ge2eEncoder", "mel_spectrogram", "normalize_volume"]

SAMPLE_RATE = 16000
#: Analysis window (25 ms) and hop (10 ms) in samples, and mel bands: resemblyzer's hparams.
N_FFT = 400
HOP = 160
N_MELS = 40
FRAME_HOP_S = HOP / SAMPLE_RATE
#: Loudness resemblyzer brings quieter recordings up to before embedding them.
TARGET_DBFS = -30.0
_LAYERS = 3
_HIDDEN = 256


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney's mel scale (librosa's default, ``htk=False``): linear below 1 kHz, log above."""
    f_sp, min_log_hz, logstep = 200.0 / 3, 1000.0, np.log(6.4) / 27.0
    mels = hz / f_sp
    log_part = hz >= min_log_hz
    mels[log_part] = min_log_hz / f_sp + np.log(hz[log_part] / min_log_hz) / logstep
    return mels


def _mel_to_hz(mels: np.ndarray) -> np.ndarray:
    f_sp, min_log_hz, logstep = 200.0 / 3, 1000.0, np.log(6.4) / 27.0
    min_log_mel = min_log_hz / f_sp
    hz = f_sp * mels
    log_part = mels >= min_log_mel
    hz[log_part] = min_log_hz * np.exp(logstep * (mels[log_part] - min_log_mel))
    return hz


def _mel_filters() -> np.ndarray:
    """``librosa.filters.mel(sr=16000, n_fft=400, n_mels=40)``: triangles, Slaney-normalised."""
    fft_freqs = np.linspace(0, SAMPLE_RATE / 2, N_FFT // 2 + 1)
    mel_points = _mel_to_hz(
        np.linspace(_hz_to_mel(np.array([0.0]))[0], _hz_to_mel(np.array([8000.0]))[0], N_MELS + 2)
    )
    fdiff = np.diff(mel_points)
    ramps = mel_points[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_points[2:] - mel_points[:-2]))[:, None]
    return np.asarray(weights, np.float32)


_FILTERS = _mel_filters()
#: Periodic Hann window, as ``scipy.signal.get_window("hann", 400)`` (librosa's STFT window).
_WINDOW = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)).astype(np.float32)


def mel_spectrogram(wav: np.ndarray) -> np.ndarray:
    """Power mel spectrogram of 16 kHz float samples, ``(frames, 40)`` float32.

    Frames are centred (the signal is zero-padded by half a window each side, librosa's
    ``center=True, pad_mode="constant"``), so frame ``i`` is centred on sample ``i * 160``.
    """
    padded = np.pad(wav.astype(np.float32), N_FFT // 2)
    n_frames = 1 + (len(padded) - N_FFT) // HOP
    if n_frames <= 0:
        return np.zeros((0, N_MELS), np.float32)
    frames = np.lib.stride_tricks.as_strided(
        padded, (n_frames, N_FFT), (padded.strides[0] * HOP, padded.strides[0])
    )
    power = np.abs(np.fft.rfft(frames * _WINDOW, axis=1)) ** 2
    return np.asarray(power.astype(np.float32) @ _FILTERS.T, np.float32)


def normalize_volume(wav: np.ndarray, target_dbfs: float = TARGET_DBFS) -> np.ndarray:
    """Raise quiet audio to ``target_dbfs`` RMS (never lower it), as resemblyzer does."""
    rms = float(np.sqrt(np.mean(np.square(wav, dtype=np.float64)))) if len(wav) else 0.0
    if rms <= 0:
        return wav
    change_db = target_dbfs - 20 * np.log10(rms)
    return wav if change_db <= 0 else (wav * (10 ** (change_db / 20))).astype(np.float32)


def _fold_gates(w_ih: np.ndarray, w_hh: np.ndarray, bias: np.ndarray) -> tuple[np.ndarray, ...]:
    """One LSTM layer's weights, transposed for ``x @ w``, gates reordered and pre-scaled.

    PyTorch stores the gates as (input, forget, cell, output); they become (input, forget,
    output, cell) so the three sigmoid gates are one contiguous block, and those rows are halved
    so that a single ``tanh`` over all gates yields the sigmoids after ``0.5 * t + 0.5``.
    """
    n = _HIDDEN
    order = np.r_[0:n, n : 2 * n, 3 * n : 4 * n, 2 * n : 3 * n]
    scale = np.r_[np.full(3 * n, 0.5), np.ones(n)].astype(np.float32)
    return (
        np.ascontiguousarray((w_ih[order] * scale[:, None]).T, np.float32),
        np.ascontiguousarray((w_hh[order] * scale[:, None]).T, np.float32),
        (bias[order] * scale).astype(np.float32),
    )


class Ge2eEncoder:
    """The pretrained LSTM: ``embed(mels)`` gives one unit vector per window of mel frames."""

    def __init__(self, weights: Path) -> None:
        """Read the weights.

        Raises:
            CheckpointError: if the file is not the expected checkpoint.
            OSError: if it cannot be read.
        """
        state = load_tensors(weights)
        state = state.get("model_state", state) if isinstance(state, dict) else state
        try:
            self._layers = [
                _fold_gates(
                    state[f"lstm.weight_ih_l{n}"],
                    state[f"lstm.weight_hh_l{n}"],
                    state[f"lstm.bias_ih_l{n}"] + state[f"lstm.bias_hh_l{n}"],
                )
                for n in range(_LAYERS)
            ]
            self._linear_w = np.ascontiguousarray(state["linear.weight"].T)
            self._linear_b = state["linear.bias"]
        except (KeyError, TypeError) as exc:
            from maie.pipeline.diarization.torch_file import CheckpointError  # noqa: PLC0415

            msg = f"{weights} is not a GE2E voice encoder checkpoint (missing {exc})"
            raise CheckpointError(msg) from exc

    def embed(self, mels: np.ndarray) -> np.ndarray:
        """Embeddings of a batch of windows.

        Args:
            mels: ``(windows, frames, 40)`` float32 mel spectrograms, all the same length.

        Returns:
            ``(windows, 256)`` float32, each L2-normalised (all entries >= 0 after the ReLU).
        """
        batch, steps, _ = mels.shape
        x = mels.astype(np.float32)
        h = np.zeros((batch, _HIDDEN), np.float32)
        gates = np.empty((batch, 4 * _HIDDEN), np.float32)
        ifo, g = gates[:, : 3 * _HIDDEN], gates[:, 3 * _HIDDEN :]
        i, f, o = (gates[:, n * _HIDDEN : (n + 1) * _HIDDEN] for n in range(3))
        for w_ih, w_hh, bias in self._layers:
            # The input projection of every step at once; only the recurrence is sequential.
            gates_in = (x.reshape(batch * steps, -1) @ w_ih + bias).reshape(batch, steps, 4 * _HIDDEN)
            h = np.zeros((batch, _HIDDEN), np.float32)
            c = np.zeros((batch, _HIDDEN), np.float32)
            outputs = np.empty((batch, steps, _HIDDEN), np.float32)
            for t in range(steps):
                np.matmul(h, w_hh, out=gates)
                gates += gates_in[:, t]
                # One tanh for all four gates: the i, f, o rows were halved by _fold_gates, so
                # sigmoid(z) = 0.5 * tanh(z / 2) + 0.5 is finished with one multiply-add.
                np.tanh(gates, out=gates)
                ifo *= 0.5
                ifo += 0.5
                c *= f
                c += i * g
                np.tanh(c, out=h)
                h *= o
                outputs[:, t] = h
            x = outputs
        raw = np.maximum(h @ self._linear_w + self._linear_b, 0)
        norms = np.linalg.norm(raw, axis=1, keepdims=True)
        return np.asarray(raw / np.maximum(norms, 1e-12), np.float32)
