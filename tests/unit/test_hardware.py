"""Device and compute-type resolution, and CUDA detection without torch."""

from __future__ import annotations

import sys

import ctranslate2
import pytest

from maie.hardware import CudaProbe, cpu_compute_type, cuda_available, probe_cuda, resolve_device


class TestResolveDevice:
    """``auto`` becomes concrete; explicit values are kept."""

    @pytest.mark.skipif(cuda_available(), reason="this host has CUDA")
    def test_auto_on_this_cpu_host(self):
        """Here (no GPU) auto is cpu/int8, and the fallback says why."""
        choice = resolve_device("auto", "auto")

        assert (choice.device, choice.compute_type) == ("cpu", "int8")
        assert choice.fallback_reason
        assert choice.fallback == f"cuda→cpu: {choice.fallback_reason}"

    def test_auto_without_gpu(self):
        """No CUDA device: cpu/int8 with the probe's reason."""
        choice = resolve_device(cuda=CudaProbe(0, "no CUDA device"))

        assert (choice.device, choice.compute_type) == ("cpu", "int8")
        assert choice.fallback == "cuda→cpu: no CUDA device"

    def test_auto_with_gpu(self):
        """A usable GPU: cuda/float16 and no fallback."""
        choice = resolve_device(cuda=CudaProbe(2))

        assert (choice.device, choice.compute_type) == ("cuda", "float16")
        assert choice.fallback is None

    def test_explicit_cpu_float32_is_kept(self):
        """Explicit device and compute type pass through untouched, GPU or not."""
        choice = resolve_device("cpu", "float32", cuda=CudaProbe(1))

        assert (choice.device, choice.compute_type) == ("cpu", "float32")
        assert choice.fallback is None

    def test_explicit_device_auto_compute(self):
        """auto compute type follows the explicit device."""
        assert resolve_device("cpu", "auto").compute_type == "int8"
        assert resolve_device("cuda", "auto").compute_type == "float16"

    def test_forced_cuda_is_not_moved(self):
        """A forced cuda stays cuda even without a GPU: the availability check reports it instead."""
        choice = resolve_device("cuda", "auto", cuda=CudaProbe(0, "no CUDA device"))

        assert choice.device == "cuda"
        assert choice.fallback is None

    def test_auto_fallback_adjusts_a_gpu_compute_type(self):
        """auto device with float16 on a host without CUDA: float16 is GPU-only, so float32."""
        choice = resolve_device("auto", "float16", cuda=CudaProbe(0, "no CUDA device"))

        assert (choice.device, choice.compute_type) == ("cpu", "float32")
        assert choice.fallback == "cuda→cpu: no CUDA device"

    @pytest.mark.parametrize(
        ("configured", "on_cpu"),
        [
            ("auto", "int8"),
            ("float16", "float32"),
            ("bfloat16", "float32"),
            ("int8_float16", "int8"),
            ("int8_bfloat16", "int8"),
            ("int8", "int8"),
            ("float32", "float32"),
            ("int8_float32", "int8_float32"),
        ],
    )
    def test_cpu_compute_type(self, configured, on_cpu):
        """GPU-only compute types map to their CPU equivalent; CPU types are kept."""
        assert cpu_compute_type(configured) == on_cpu

    def test_bad_device(self):
        """Anything but auto/cuda/cpu is refused."""
        with pytest.raises(ValueError, match="device"):
            resolve_device("tpu")


class TestProbeCuda:
    """The probe never raises and never imports torch."""

    def test_driver_error_counts_as_no_gpu(self, monkeypatch):
        """A driver too old for CTranslate2's CUDA runtime is 'no GPU', with the reason kept."""

        def broken():
            raise RuntimeError("CUDA driver version is insufficient")

        monkeypatch.setattr(ctranslate2, "get_cuda_device_count", broken)

        probe = probe_cuda()

        assert not probe.available
        assert "insufficient" in (probe.reason or "")

    def test_missing_ctranslate2(self, monkeypatch):
        """Without CTranslate2 there is no GPU to use."""
        monkeypatch.setitem(sys.modules, "ctranslate2", None)

        probe = probe_cuda()

        assert probe.device_count == 0
        assert "CTranslate2" in (probe.reason or "")

    def test_does_not_import_torch(self):
        """Detection goes through CTranslate2 only."""
        had_torch = "torch" in sys.modules
        probe_cuda()
        assert ("torch" in sys.modules) == had_torch
