"""Client frames to 16 kHz samples: FFmpeg's resampler, real Opus and WebM encoded by FFmpeg."""

from __future__ import annotations

import io
import subprocess
import sys

import av
import numpy as np
import pytest

from maie.errors import StreamFrameError
from maie.pipeline.streaming.frames import frame_decoder
from maie.pipeline.streaming.options import Encoding
from maie.pipeline.streaming.recording import WavRecording, read_samples
from tests.unit.pipeline.streaming.conftest import pcm_at

JFK = "jfk_16k.wav"


def decode_all(decoder, frames) -> np.ndarray:
    out = [decoder.decode(frame) for frame in frames]
    out.append(decoder.flush())
    decoder.close()
    return np.concatenate(out)


def chunks(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def opus_packets(pcm: np.ndarray) -> list[bytes]:
    """JFK encoded by libopus at 16 kHz, 20 ms per packet, as WebCodecs would send it."""
    encoder = av.CodecContext.create("libopus", "w")
    encoder.sample_rate, encoder.layout, encoder.format = 16000, "mono", "s16"
    encoder.open()
    packets = []
    for offset in range(0, pcm.size, 320):
        frame = av.AudioFrame.from_ndarray(
            pcm[offset : offset + 320].reshape(1, -1), format="s16", layout="mono"
        )
        frame.sample_rate = 16000
        packets += [bytes(p) for p in encoder.encode(frame)]
    return packets + [bytes(p) for p in encoder.encode(None)]


def webm_file(pcm: np.ndarray) -> bytes:
    """JFK as one WebM/Opus file, as a MediaRecorder produces it."""
    out = io.BytesIO()
    with av.open(out, "w", format="webm") as container:
        stream = container.add_stream("libopus", rate=48000, layout="mono")
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = 16000
        resampler = av.AudioResampler(format="s16", layout="mono", rate=48000)
        for resampled in [*resampler.resample(frame), *resampler.resample(None)]:
            for packet in stream.encode(resampled):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return out.getvalue()


def correlation(a: np.ndarray, b: np.ndarray, *, max_lag: int = 2000) -> float:
    """Peak normalised cross-correlation (codecs delay the signal a little)."""
    n = min(a.size, b.size) - max_lag
    x = a[:n].astype(np.float64)
    best = 0.0
    for lag in range(0, max_lag, 8):
        y = b[lag : lag + n].astype(np.float64)
        best = max(best, float(np.dot(x, y) / (np.linalg.norm(x) * np.linalg.norm(y))))
    return best


class TestPcm:
    def test_16k_s16_passes_through_untouched(self):
        pcm = pcm_at(JFK, 16000)
        out = decode_all(frame_decoder(Encoding.PCM_S16LE, 16000), chunks(pcm.tobytes(), 640))
        assert np.array_equal(out, pcm)

    @pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000])
    def test_any_rate_becomes_16k_with_the_same_length(self, rate):
        pcm = pcm_at(JFK, rate)
        out = decode_all(frame_decoder(Encoding.PCM_S16LE, rate), chunks(pcm.tobytes(), rate // 50 * 2))
        assert abs(out.size - pcm.size * 16000 / rate) <= 2
        reference = pcm_at(JFK, 16000)
        assert correlation(reference, out, max_lag=64) > 0.95

    def test_float_frames(self):
        pcm = pcm_at(JFK, 48000)
        floats = (pcm.astype(np.float32) / 32768).astype("<f4")
        out = decode_all(frame_decoder(Encoding.PCM_F32LE, 48000), chunks(floats.tobytes(), 3840))
        s16 = decode_all(frame_decoder(Encoding.PCM_S16LE, 48000), chunks(pcm.tobytes(), 1920))
        assert out.size == s16.size
        assert np.abs(out.astype(int) - s16).max() <= 2

    def test_tones_above_8khz_do_not_fold_into_the_band(self):
        """A 10 kHz tone at 44.1 kHz must vanish at 16 kHz (Nyquist 8 kHz), not alias to 6 kHz."""
        t = np.arange(44100 * 2) / 44100
        tone = (np.sin(2 * np.pi * 10_000 * t) * 16000).astype("<i2")
        out = decode_all(frame_decoder(Encoding.PCM_S16LE, 44100), chunks(tone.tobytes(), 1764))
        steady = out[1600:-1600].astype(np.float64)
        assert np.sqrt(np.mean(steady**2)) < 0.01 * 16000 / np.sqrt(2)

    def test_half_samples_and_nan_are_refused(self):
        with pytest.raises(StreamFrameError, match="whole 2-byte samples"):
            frame_decoder(Encoding.PCM_S16LE, 16000).decode(b"\x00\x01\x02")
        with pytest.raises(StreamFrameError, match="whole 4-byte samples"):
            frame_decoder(Encoding.PCM_F32LE, 16000).decode(b"\x00\x01")
        with pytest.raises(StreamFrameError, match="finite"):
            frame_decoder(Encoding.PCM_F32LE, 16000).decode(np.array([0.1, np.nan], "<f4").tobytes())


class TestOpus:
    def test_packets_decode_to_the_speech(self):
        pcm = pcm_at(JFK, 16000)
        out = decode_all(frame_decoder(Encoding.OPUS, 16000), opus_packets(pcm))
        assert abs(out.size - pcm.size) < 16000 * 0.05
        assert correlation(pcm, out) > 0.9

    def test_garbage_is_refused(self):
        decoder = frame_decoder(Encoding.OPUS, 16000)
        with pytest.raises(StreamFrameError, match="not an Opus packet"):
            decoder.decode(b"\xff\x00 definitely not opus " * 4)
        with pytest.raises(StreamFrameError, match="empty"):
            decoder.decode(b"")


class TestWebm:
    @pytest.mark.parametrize("chunk", [997, 16384])
    def test_chunks_cut_anywhere_decode_as_one_stream(self, chunk):
        """MediaRecorder slices at arbitrary bytes; the samples still come out, most of them early."""
        pcm = pcm_at(JFK, 16000)
        data = webm_file(pcm)
        decoder = frame_decoder(Encoding.WEBM, 16000)
        early = [decoder.decode(part) for part in chunks(data, chunk)]
        out = np.concatenate([*early, decoder.flush()])
        decoder.close()
        assert abs(out.size - pcm.size) < 16000 * 0.05
        assert correlation(pcm, out) > 0.9

    def test_not_webm_is_refused_on_a_later_frame_or_at_the_end(self):
        decoder = frame_decoder(Encoding.WEBM, 16000)

        def feed_and_end() -> None:  # the demuxer may notice while the frame is fed, or at the end
            decoder.decode(b"RIFF this is no webm at all" * 300)
            decoder.flush()

        with pytest.raises(StreamFrameError, match="not a WebM audio stream"):
            feed_and_end()
        decoder.close()

    def test_close_ends_the_demuxer_thread(self):
        decoder = frame_decoder(Encoding.WEBM, 16000)
        decoder.decode(webm_file(pcm_at(JFK, 16000))[:500])
        decoder.close()
        assert not decoder._thread.is_alive()


class TestRecording:
    def test_the_wav_is_valid_while_it_grows(self, tmp_path):
        recording = WavRecording(tmp_path / "r.wav")
        pcm = pcm_at(JFK, 16000)
        recording.write(pcm[:8000])
        assert np.array_equal(read_samples(tmp_path / "r.wav"), pcm[:8000])  # not closed yet
        recording.write(pcm[8000:16000])
        assert read_samples(tmp_path / "r.wav").size == 16000
        recording.close()
        recording.close()
        assert recording.duration_s == 1.0


def test_the_streaming_package_imports_no_service_layer():
    """maie.pipeline stays pure: no web framework, queue, Redis, store, API or worker."""
    code = (
        "import sys, maie.pipeline.streaming\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('litestar', 'dramatiq', 'redis')"
        " or m.startswith(('maie.store', 'maie.api', 'maie.worker'))]\n"
        "print(','.join(bad))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""
