"""Options of the ChunkFormer backend, and whether its stack (torch, torchaudio, chunkformer) runs here.

Importing chunkformer loads torch, torchaudio and transformers: seconds and hundreds of MB. The
API must still tell the truth about it in ``/v1/models``, so the import is tried once, in a child
process (``python -m maie.pipeline.asr.chunkformer_options``), which also reports whether torch
sees a usable CUDA device. The answer is kept for the life of the process: installing the extra
means restarting the service anyway.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from maie.pipeline.asr.model_files import hub_offline, hub_problem

if TYPE_CHECKING:
    from maie.config import Settings

__all__ = [
    "INSTALL_HINT",
    "ChunkformerOptions",
    "TorchStack",
    "model_problem",
    "torch_stack",
]

#: What to tell an operator who has not installed the extra (docs/asr.md has the CPU recipe).
INSTALL_HINT = (
    "install the extra (pip install 'maie[chunkformer]'; on a CPU-only host install torch from the "
    "PyTorch CPU index first, see docs/asr.md)"
)
#: Seconds the child process may take to import the stack (torch + transformers import slowly).
STACK_CHECK_TIMEOUT_S = 180.0
#: Weight files ChunkFormer's ``from_pretrained`` accepts, in the order it tries them.
CHECKPOINT_NAMES = ("pytorch_model.bin", "pytorch_model.pt", "pytorch_model.ckpt")
#: Compute type of the model: ChunkFormer runs in float32 unless autocast is used.
COMPUTE_TYPE = "float32"


class TorchStack(msgspec.Struct, frozen=True, kw_only=True):
    """What importing the ChunkFormer stack found."""

    #: Why it cannot be imported; ``None`` when it can.
    problem: str | None = None
    #: CUDA devices torch can use (0 for a CPU build or no GPU).
    cuda_devices: int = 0
    #: Why torch cannot use CUDA, when it cannot.
    cuda_reason: str | None = None


@functools.cache
def torch_stack() -> TorchStack:
    """Import the stack in a child process once and report (memoised for this process)."""
    missing = [
        name for name in ("torch", "torchaudio", "chunkformer") if importlib.util.find_spec(name) is None
    ]
    if missing:
        return TorchStack(problem=f"{', '.join(missing)} not installed; {INSTALL_HINT}")
    try:
        done = subprocess.run(
            [sys.executable, "-m", "maie.pipeline.asr.chunkformer_options"],
            capture_output=True,
            text=True,
            timeout=STACK_CHECK_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return TorchStack(problem=f"importing chunkformer took over {STACK_CHECK_TIMEOUT_S:g} s")
    lines = done.stdout.strip().splitlines()
    try:
        return msgspec.json.decode(lines[-1], type=TorchStack)
    except (IndexError, msgspec.DecodeError):
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        return TorchStack(problem=f"importing chunkformer failed: {tail[0]}; {INSTALL_HINT}")


def _report() -> TorchStack:
    """Run in the child: import everything the backend imports and ask torch about CUDA."""
    from maie.pipeline.asr.torchaudio_cpu import import_torchaudio  # noqa: PLC0415 - child only

    try:
        import_torchaudio()
        import chunkformer  # noqa: F401, PLC0415 - the import is the check
        import torch  # noqa: PLC0415
    except (ImportError, OSError, RuntimeError) as exc:
        return TorchStack(
            problem=f"chunkformer cannot be imported ({type(exc).__name__}: {exc}); {INSTALL_HINT}"
        )
    if torch.version.cuda is None:
        return TorchStack(cuda_reason=f"torch {torch.__version__} is a CPU-only build")
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return TorchStack(cuda_devices=count, cuda_reason=None if count else "torch sees no CUDA device")


class ChunkformerOptions(msgspec.Struct, frozen=True, kw_only=True):
    """How the ChunkFormer backend loads and decodes; every value concrete."""

    #: Local folder or hub repo id.
    model: str
    #: ISO 639-1 code of the model's language.
    language: str = "vi"
    #: ``cuda`` or ``cpu``.
    device: str = "cpu"
    #: Whether ``device`` came from ``auto`` (then a CUDA load failure may fall back to CPU).
    device_auto: bool = True
    #: Why ``auto`` did not give the GPU; recorded in versions.
    device_fallback: str | None = None
    chunk_size: int = 64
    left_context_size: int = 128
    right_context_size: int = 128
    total_batch_duration_s: int = 1800
    return_timestamps: bool = True
    max_silence_duration_s: float = 0.5
    #: Seconds of audio decoded per ``endless_decode`` call (MAIE_ASR_WINDOW_S): bounds memory.
    window_s: float = 300.0
    #: Where hub models are downloaded (``MAIE_DATA_DIR/models``).
    download_root: Path = Path("data/models")
    #: Where the checkpoint-hash cache lives; ``None`` keeps it in memory.
    cache_dir: Path | None = None

    @classmethod
    def from_settings(cls, settings: Settings, *, stack: TorchStack | None = None) -> ChunkformerOptions:
        """Resolve ``auto`` with what torch reports (``stack``; probed when ``None``)."""
        cf = settings.chunkformer
        device, fallback = cf.device, None
        if device == "auto":
            report = torch_stack() if stack is None else stack
            device = "cuda" if report.cuda_devices > 0 else "cpu"
            if device == "cpu":
                fallback = f"cuda→cpu: {report.cuda_reason or report.problem or 'no CUDA device'}"
        return cls(
            model=cf.model,
            language=cf.language,
            device=device,
            device_auto=cf.device == "auto",
            device_fallback=fallback,
            chunk_size=cf.chunk_size,
            left_context_size=cf.left_context_size,
            right_context_size=cf.right_context_size,
            total_batch_duration_s=cf.total_batch_duration_s,
            return_timestamps=cf.return_timestamps,
            max_silence_duration_s=cf.max_silence_duration_s,
            window_s=float(settings.asr.window_s),
            download_root=settings.storage.data_dir / "models",
            cache_dir=settings.storage.data_dir / "cache",
        )

    @property
    def local_dir(self) -> Path | None:
        """The model as a folder when it names one (absolute, relative with ``.``/``~``, or existing)."""
        path = Path(self.model).expanduser()
        if path.is_dir() or path.is_absolute() or self.model.startswith((".", "~")):
            return path
        return None

    @property
    def variant(self) -> str:
        """The model's short name: a folder's name or the repo id."""
        folder = self.local_dir
        return self.model if folder is None else folder.resolve().name

    def decode_kwargs(self) -> dict[str, int]:
        """Chunking arguments shared by ``endless_decode`` and ``batch_decode``."""
        return {
            "chunk_size": self.chunk_size,
            "left_context_size": self.left_context_size,
            "right_context_size": self.right_context_size,
            "total_batch_duration": self.total_batch_duration_s,
        }


def model_problem(options: ChunkformerOptions) -> str | None:
    """Why the model cannot be loaded here (absent, incomplete, not downloadable), or ``None``."""
    folder = options.local_dir
    if folder is not None:
        return folder_problem(folder)
    from huggingface_hub import snapshot_download  # noqa: PLC0415 - only when a repo id is configured

    try:
        snapshot_download(options.model, cache_dir=options.download_root, local_files_only=True)
    except (OSError, ValueError):  # huggingface_hub's "not in the cache" errors derive from these
        reason = hub_problem()
        if reason is not None:
            return (
                f"model {options.model!r} is not in {options.download_root} and the model hub cannot be "
                f"used ({reason}); set MAIE_CHUNKFORMER_MODEL to a local folder or fetch the model first"
            )
    return None


def folder_problem(folder: Path) -> str | None:
    """Why ``folder`` is not a loadable ChunkFormer model, or ``None``."""
    name = f"MAIE_CHUNKFORMER_MODEL={str(folder)!r}"
    if not folder.is_dir():
        return f"{name}: folder does not exist"
    if not (folder / "config.yaml").is_file():
        return f"{name} has no config.yaml"
    if not any((folder / n).is_file() for n in CHECKPOINT_NAMES):
        return f"{name} has none of {', '.join(CHECKPOINT_NAMES)}"
    if not (folder / "vocab.txt").is_file():
        return f"{name} has no vocab.txt (without it ChunkFormer returns token ids, not text)"
    return None


def locate(options: ChunkformerOptions) -> Path:
    """The model folder, downloading a repo id into ``download_root`` when allowed.

    Raises:
        FileNotFoundError: with what to do, when it is absent and cannot be fetched.
    """
    folder = options.local_dir
    if folder is None:
        from huggingface_hub import snapshot_download  # noqa: PLC0415

        try:
            folder = Path(
                snapshot_download(
                    options.model, cache_dir=options.download_root, local_files_only=hub_offline()
                )
            )
        except (OSError, ValueError) as exc:
            msg = f"model {options.model!r} could not be fetched into {options.download_root} ({exc})"
            raise FileNotFoundError(msg) from exc
    if problem := folder_problem(folder):
        raise FileNotFoundError(problem)
    return folder


if __name__ == "__main__":
    sys.stdout.write(json.dumps(msgspec.to_builtins(_report())) + "\n")
