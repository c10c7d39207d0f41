"""Compare MAIE's NumPy GE2E encoder with resemblyzer's PyTorch one: same windows, same weights.

Run it with a Python that has torch (and, for the mel check, librosa) besides MAIE on its path::

    python3 -m venv /tmp/ge2e
    /tmp/ge2e/bin/pip install torch==2.13.0 librosa msgspec structlog av threadpoolctl
    PYTHONPATH=. /tmp/ge2e/bin/python scripts/compare_ge2e.py \
        --weights .venv/lib/python3.11/site-packages/resemblyzer/pretrained.pt --threads 1

It prints the largest differences of mel frames and embeddings, and the time each encoder takes
for the same batch of windows. It asserts nothing.
"""

from __future__ import annotations

import argparse
import sys
import time
import wave
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from maie.pipeline.diarization.ge2e import HOP, N_FFT, N_MELS, SAMPLE_RATE, Ge2eEncoder, mel_spectrogram  # noqa: E402

DEFAULT_AUDIO = ROOT.parent / "shared" / "audio" / "pyannote" / "ami_mixture_4spk.wav"


def main() -> None:
    """Run the comparison and print it."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", type=Path, required=True, help="resemblyzer's pretrained.pt")
    ap.add_argument("--audio", type=Path, default=DEFAULT_AUDIO, help="16 kHz mono WAV")
    ap.add_argument("--window-s", type=float, default=1.6)
    ap.add_argument("--hop-s", type=float, default=0.4)
    ap.add_argument("--threads", type=int, default=1, help="BLAS threads of NumPy and torch alike")
    args = ap.parse_args()
    with wave.open(str(args.audio)) as source:
        wav = np.frombuffer(source.readframes(source.getnframes()), np.int16).astype(np.float32) / 32768

    mel = mel_spectrogram(wav)
    try:
        import librosa

        ref = librosa.feature.melspectrogram(
            y=wav, sr=SAMPLE_RATE, n_fft=N_FFT, hop_length=HOP, n_mels=N_MELS
        ).T
        print(f"mel: max relative difference to librosa {np.max(np.abs(mel - ref)) / np.max(ref):.2e}")
    except ImportError:
        print("mel: librosa not installed, not compared")

    frames, hop = round(args.window_s * 100), round(args.hop_s * 100)
    mels = np.stack([mel[i : i + frames] for i in range(0, len(mel) - frames, hop)])
    from threadpoolctl import threadpool_limits

    encoder = Ge2eEncoder(args.weights)
    with threadpool_limits(limits=args.threads, user_api="blas"):
        started = time.perf_counter()
        ours = encoder.embed(mels)
        numpy_s = time.perf_counter() - started

    import torch

    torch.set_num_threads(args.threads)

    lstm = torch.nn.LSTM(N_MELS, 256, 3, batch_first=True)
    linear = torch.nn.Linear(256, 256)
    state = torch.load(args.weights, map_location="cpu", weights_only=False)["model_state"]
    lstm.load_state_dict({k.removeprefix("lstm."): v for k, v in state.items() if k.startswith("lstm.")})
    linear.load_state_dict(
        {k.removeprefix("linear."): v for k, v in state.items() if k.startswith("linear.")}
    )
    started = time.perf_counter()
    with torch.no_grad():
        _, (hidden, _) = lstm(torch.from_numpy(mels))
        raw = torch.relu(linear(hidden[-1]))
        theirs = (raw / torch.norm(raw, dim=1, keepdim=True)).numpy()
    torch_s = time.perf_counter() - started
    cosine = np.sum(ours * theirs, axis=1)
    print(f"windows: {len(mels)} of {frames} frames; torch threads: {torch.get_num_threads()}")
    print(
        f"embeddings: max abs difference {np.max(np.abs(ours - theirs)):.2e}, min cosine {cosine.min():.6f}"
    )
    audio_s = len(wav) / SAMPLE_RATE
    print(
        f"numpy encoder {numpy_s:.2f} s (RTF {numpy_s / audio_s:.3f}); "
        f"torch {torch_s:.2f} s (RTF {torch_s / audio_s:.3f})"
    )


if __name__ == "__main__":
    main()
