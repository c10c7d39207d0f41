"""What accelerator this host offers, and what ``device="auto"`` / ``compute_type="auto"`` become.

CUDA is detected through CTranslate2 rather than torch: CTranslate2 is what runs the ASR models,
it ships its own CUDA runtime, and importing torch only to ask would cost seconds and gigabytes
on hosts that never run an LLM in-process.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = [
    "CPU_COMPUTE_TYPE",
    "GPU_COMPUTE_TYPE",
    "CudaProbe",
    "DeviceChoice",
    "cpu_compute_type",
    "cuda_available",
    "probe_cuda",
    "resolve_device",
]

#: Compute type ``auto`` becomes on a GPU: half precision is the accuracy/speed sweet spot there.
GPU_COMPUTE_TYPE = "float16"
#: Compute type ``auto`` becomes on a CPU: int8 is several times faster than float32 on CPUs.
CPU_COMPUTE_TYPE = "int8"
#: CTranslate2 compute types meant for GPUs, and the nearest type a CPU runs efficiently.
_CPU_EQUIVALENT = {
    "float16": "float32",
    "bfloat16": "float32",
    "int8_float16": "int8",
    "int8_bfloat16": "int8",
}


@dataclass(frozen=True, slots=True)
class CudaProbe:
    """How many CUDA devices CTranslate2 can use, and why none when there are none."""

    #: Usable CUDA devices; 0 when CUDA is absent or broken.
    device_count: int
    #: Why no device is usable (``None`` when ``device_count`` > 0).
    reason: str | None = None

    @property
    def available(self) -> bool:
        """Whether at least one CUDA device is usable."""
        return self.device_count > 0


@dataclass(frozen=True, slots=True)
class DeviceChoice:
    """A concrete device and compute type, and the fallback that led to them, if any."""

    #: ``cuda`` or ``cpu``.
    device: Literal["cpu", "cuda"]
    #: A CTranslate2 compute type such as ``float16`` or ``int8``.
    compute_type: str
    #: Why the GPU was not used although ``auto`` allowed it; ``None`` when nothing fell back.
    fallback_reason: str | None = None

    @property
    def fallback(self) -> str | None:
        """The fallback as recorded in versions, e.g. ``"cuda→cpu: no CUDA device"``."""
        return None if self.fallback_reason is None else f"cuda→cpu: {self.fallback_reason}"


def probe_cuda() -> CudaProbe:
    """Ask CTranslate2 how many CUDA devices it can use.

    Never raises: a missing CTranslate2, a CPU-only build or a driver too old for its CUDA runtime
    all count as "no CUDA device", with the reason kept for logs and ``/v1/models``.

    Returns:
        The device count, with a reason when it is 0.
    """
    try:
        import ctranslate2  # noqa: PLC0415 - optional at import time of this module
    except ImportError as exc:
        return CudaProbe(0, f"CTranslate2 cannot be imported ({exc})")
    try:
        count = int(ctranslate2.get_cuda_device_count())
    except (RuntimeError, OSError) as exc:
        # A driver older than CTranslate2's CUDA runtime raises here rather than returning 0.
        return CudaProbe(0, f"CUDA is not usable ({exc})")
    if count == 0:
        return CudaProbe(0, "no CUDA device")
    return CudaProbe(count)


def cpu_compute_type(compute_type: str) -> str:
    """The compute type to use on a CPU when ``compute_type`` was meant for (or chosen for) a GPU.

    ``auto`` becomes :data:`CPU_COMPUTE_TYPE`; half-precision types become their CPU equivalent
    (``float16`` → ``float32``, ``int8_float16`` → ``int8``); anything else is kept.
    """
    if compute_type == "auto":
        return CPU_COMPUTE_TYPE
    return _CPU_EQUIVALENT.get(compute_type, compute_type)


def cuda_available() -> bool:
    """Whether CTranslate2 can use at least one CUDA device on this host."""
    return probe_cuda().available


def resolve_device(
    device: str = "auto",
    compute_type: str = "auto",
    *,
    cuda: CudaProbe | None = None,
) -> DeviceChoice:
    """Turn configured device and compute type into concrete values.

    ``auto`` devices become ``cuda`` when a GPU is usable and ``cpu`` otherwise (a fallback, with
    its reason); ``auto`` compute types become :data:`GPU_COMPUTE_TYPE` or :data:`CPU_COMPUTE_TYPE`
    for the chosen device, and a GPU compute type is adjusted (:func:`cpu_compute_type`) when
    ``auto`` fell back to the CPU. Explicit values are kept as given: a forced ``cuda`` on a host without
    one is reported by the availability check and fails at load time, never silently moved to CPU.

    Args:
        device: ``auto``, ``cuda`` or ``cpu``.
        compute_type: ``auto`` or a CTranslate2 compute type.
        cuda: The CUDA probe to decide with; ``None`` probes this host.

    Returns:
        The concrete choice.

    Raises:
        ValueError: if ``device`` is not one of ``auto``, ``cuda``, ``cpu``.
    """
    if device not in {"auto", "cuda", "cpu"}:
        msg = f"device must be 'auto', 'cuda' or 'cpu', got {device!r}"
        raise ValueError(msg)
    chosen: Literal["cpu", "cuda"]
    reason: str | None = None
    if device == "auto":
        probe = probe_cuda() if cuda is None else cuda
        chosen = "cuda" if probe.available else "cpu"
        reason = None if probe.available else probe.reason or "no CUDA device"
    else:
        chosen = "cuda" if device == "cuda" else "cpu"
    if compute_type == "auto":
        compute_type = GPU_COMPUTE_TYPE if chosen == "cuda" else CPU_COMPUTE_TYPE
    elif reason is not None:
        compute_type = cpu_compute_type(compute_type)  # a GPU type chosen for a GPU that is not there
    return DeviceChoice(device=chosen, compute_type=compute_type, fallback_reason=reason)
