"""Preprocess stage on real files: real PyAV, real speech from ../shared/audio, hostile inputs."""

from __future__ import annotations

import contextlib
import os
import resource
import subprocess
import sys
import threading
import tracemalloc
import wave
from typing import TYPE_CHECKING

import av
import numpy as np
import pytest
from structlog.testing import capture_logs

from maie.config import AudioSettings
from maie.errors import AudioTooLongError, AudioTooShortError, UnsupportedMediaError
from maie.pipeline.preprocess import (
    ACCEPTED_FORMATS,
    PreprocessInput,
    PreprocessOptions,
    Preprocessor,
    check_duration,
    probe,
)
from maie.schemas import AudioInfo
from tests.fixtures import bad_media
from tests.fixtures.paths import shared_audio

if TYPE_CHECKING:
    from pathlib import Path

    from maie.schemas import PreprocessArtifact

OPTIONS = PreprocessOptions(min_duration_s=1.0, max_duration_s=14400.0)


@pytest.fixture
def media(tmp_path: Path) -> Path:
    """Folder for inputs written by the test."""
    folder = tmp_path / "in"
    folder.mkdir()
    return folder


@pytest.fixture
def out(tmp_path: Path) -> Path:
    """Folder the WAV is written to; tests check nothing else is left in it."""
    folder = tmp_path / "out"
    folder.mkdir()
    return folder


def run(source: Path, out: Path, options: PreprocessOptions = OPTIONS) -> PreprocessArtifact:
    with Preprocessor(options) as stage:
        return stage.process(PreprocessInput(source=source, target=out / "preprocessed.wav"))


def read_wav(path: Path) -> np.ndarray:
    """Samples of a WAV that must be 16 kHz mono 16-bit, as float in [-1, 1]."""
    with wave.open(str(path), "rb") as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, 16000)
        data = wav.readframes(wav.getnframes())
    return np.frombuffer(data, dtype="<i2").astype(np.float64) / 32768


def decode_channels(path: Path) -> tuple[np.ndarray, int]:
    """Every channel of ``path`` decoded by PyAV without resampling: (channels x samples, rate)."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        data = np.concatenate([frame.to_ndarray() for frame in container.decode(stream)], axis=1)
        rate, channels = stream.codec_context.sample_rate, stream.codec_context.channels
        sample_format = stream.codec_context.format
    if not sample_format.is_planar:  # packed frames come as one row of interleaved samples
        data = data.reshape(-1, channels).T
    scale = {"s16": 2**15, "s32": 2**31}.get(sample_format.name.removesuffix("p"), 1)
    return data.astype(np.float64) / scale, rate


def dominant_frequency(samples: np.ndarray, rate: int) -> float:
    """Frequency of the strongest spectral peak: a sped-up or slowed-down tone moves it."""
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[spectrum.argmax()])


def envelope(samples: np.ndarray, rate: int, window_s: float = 0.05) -> np.ndarray:
    """RMS energy per ``window_s`` window: compares loudness over time across sample rates."""
    size = round(rate * window_s)
    usable = len(samples) // size * size
    return np.sqrt((samples[:usable].reshape(-1, size) ** 2).mean(axis=1))


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Normalised correlation of two sequences, cut to the shorter one."""
    n = min(len(a), len(b))
    a, b = a[:n] - a[:n].mean(), b[:n] - b[:n].mean()
    return float(a @ b / np.sqrt((a @ a) * (b @ b)))


def best_lagged_correlation(a: np.ndarray, b: np.ndarray, max_lag: int) -> tuple[float, int]:
    """Highest normalised correlation of ``a`` and ``b`` shifted by up to ``max_lag`` samples."""
    best = (-1.0, 0)
    for lag in range(-max_lag, max_lag + 1):
        shifted = (a[lag:], b) if lag >= 0 else (a, b[-lag:])
        best = max(best, (correlation(*shifted), lag))
    return best


def assert_folder_holds(folder: Path, *names: str) -> None:
    assert sorted(p.name for p in folder.iterdir()) == sorted(names)


class TestOptions:
    """PreprocessOptions and check_duration."""

    def test_from_settings(self):
        settings = AudioSettings(min_duration_s=2.0, max_duration_s=60.0, decode_time_limit_s=30.0)
        options = PreprocessOptions.from_settings(settings)
        assert (options.min_duration_s, options.max_duration_s) == (2.0, 60.0)
        assert (options.decode_time_limit_s, options.sample_rate) == (30.0, 16000)

    def test_accepts_the_bounds_themselves(self):
        options = PreprocessOptions(min_duration_s=1.0, max_duration_s=10.0)
        for duration in (1.0, 10.0):
            check_duration(self.info(duration), options)

    def test_too_short_names_the_lengths_and_the_variable(self):
        with pytest.raises(AudioTooShortError) as caught:
            check_duration(self.info(0.3), OPTIONS)
        assert "0.30 s" in caught.value.detail
        assert "1 s" in caught.value.detail
        assert "MAIE_MIN_DURATION_S" in caught.value.detail
        assert caught.value.status_code == 422

    def test_too_long_names_the_lengths_and_the_variable(self):
        with pytest.raises(AudioTooLongError) as caught:
            check_duration(self.info(14400.5), OPTIONS)
        assert "14400.50 s" in caught.value.detail
        assert "14400 s" in caught.value.detail
        assert "MAIE_MAX_DURATION_S" in caught.value.detail
        assert caught.value.status_code == 422

    @staticmethod
    def info(duration: float) -> AudioInfo:
        return AudioInfo(
            container="wav", codec="pcm_s16le", duration_s=duration, channels=1, sample_rate=16000
        )


class TestProbe:
    """probe() on real speech."""

    def test_flac(self):
        info = probe(shared_audio("jfk.flac"))
        assert (info.container, info.codec, info.channels, info.sample_rate) == ("flac", "flac", 2, 44100)
        assert info.duration_s == pytest.approx(11.0, abs=0.01)
        assert info.bit_rate

    def test_mp3(self):
        info = probe(shared_audio("lhotse/common_voice_en_651325.mp3"))
        assert (info.container, info.codec, info.channels, info.sample_rate) == ("mp3", "mp3", 1, 48000)
        assert info.duration_s > 1

    def test_duration_is_decoded_when_the_container_states_none(self, media):
        source = bad_media.write_flac_with_false_length(media, shared_audio("jfk.flac"), claim=0)
        assert probe(source).duration_s == pytest.approx(11.0, abs=0.01)

    def test_counting_stops_past_the_bound(self, media):
        source = bad_media.write_flac_with_false_length(media, shared_audio("jfk.flac"), claim=0)
        assert 3.0 < probe(source, max_duration_s=3.0).duration_s < 3.5

    def test_missing_file(self, media):
        with pytest.raises(FileNotFoundError):
            probe(media / "absent.wav")


class TestConversion:
    """Output is a 16 kHz mono 16-bit WAV with the same sound, length and timing as the input."""

    def test_flac_44k_stereo_24bit_matches_the_16k_original(self, out):
        artifact = run(shared_audio("jfk.flac"), out)
        reference, _ = decode_channels(shared_audio("jfk_16k.wav"))
        output = read_wav(out / "preprocessed.wav")
        assert artifact.duration_s == pytest.approx(11.0, abs=0.005)
        assert len(output) == pytest.approx(len(reference[0]), abs=80)
        # jfk_16k.wav is the same recording at 16 kHz: a wrong rate, a lost channel or a shift shows.
        score, lag = best_lagged_correlation(output, reference[0], max_lag=8)
        assert score > 0.99
        assert abs(lag) <= 4
        assert_folder_holds(out, "preprocessed.wav")

    def test_16k_mono_wav_passes_through_unchanged(self, out):
        source = shared_audio("jfk_16k.wav")
        run(source, out)
        reference, _ = decode_channels(source)
        output = read_wav(out / "preprocessed.wav")
        assert len(output) == len(reference[0])
        assert np.abs(output - reference[0]).max() < 1e-3

    def test_8k_wav_is_upsampled_not_sped_up(self, media, out):
        source = shared_audio("jfk_16k.wav")
        narrow = media / "jfk_8k.wav"
        with av.open(str(source)) as src, av.open(str(narrow), "w") as dst:
            stream = dst.add_stream("pcm_s16le", rate=8000, layout="mono")
            resampler = av.AudioResampler(format="s16", layout="mono", rate=8000)
            for frame in src.decode(audio=0):
                for converted in resampler.resample(frame):
                    dst.mux(stream.encode(converted))
            for converted in resampler.resample(None):
                dst.mux(stream.encode(converted))
            dst.mux(stream.encode(None))
        artifact = run(narrow, out)
        assert artifact.source.sample_rate == 8000
        assert artifact.duration_s == pytest.approx(11.0, abs=0.005)
        reference, _ = decode_channels(source)
        score, _ = best_lagged_correlation(read_wav(out / "preprocessed.wav"), reference[0], max_lag=8)
        assert score > 0.9  # what is left above 4 kHz is lost, the rest must line up

    @pytest.mark.parametrize("name", ["hotwords.mp3", "lhotse/common_voice_en_651325.mp3"])
    def test_mp3_keeps_its_loudness_over_time(self, name, out):
        source = shared_audio(name)
        artifact = run(source, out)
        channels, rate = decode_channels(source)
        output = read_wav(out / "preprocessed.wav")
        assert artifact.duration_s == pytest.approx(channels.shape[1] / rate, abs=0.06)
        assert len(output) / 16000 == pytest.approx(artifact.duration_s, abs=1e-6)
        assert correlation(envelope(output, 16000), envelope(channels.mean(axis=0), rate)) > 0.95

    def test_stereo_with_one_speaker_per_channel_keeps_both(self, out):
        source = shared_audio("stereo_diarization.wav")
        run(source, out)
        (left, right), rate = decode_channels(source)
        assert rate == 16000
        output = read_wav(out / "preprocessed.wav")
        assert len(output) == len(left)
        # The mix must be a·left + b·right with both weights clearly present (FFmpeg uses 0.5 each).
        (a, b), *_ = np.linalg.lstsq(np.stack([left, right], axis=1), output, rcond=None)
        assert a == pytest.approx(b, rel=0.05)
        assert a > 0.3

    def test_video_with_audio_keeps_the_audio(self, media, out):
        artifact = run(bad_media.write_video_mp4(media, "meeting.mp4", with_audio=True), out)
        assert artifact.source.codec == "aac"
        assert artifact.duration_s == pytest.approx(1.0, abs=0.05)

    def test_running_again_overwrites_cleanly(self, out):
        first = run(shared_audio("jfk_16k.wav"), out)
        content = (out / "preprocessed.wav").read_bytes()
        (out / "preprocessed.wav").write_bytes(b"stale")
        assert run(shared_audio("jfk_16k.wav"), out) == first
        assert (out / "preprocessed.wav").read_bytes() == content
        assert_folder_holds(out, "preprocessed.wav")

    def test_logs_a_key_value_event(self, out):
        with capture_logs() as logs:
            run(shared_audio("jfk_16k.wav"), out)
        (event,) = [e for e in logs if e["event"] == "preprocess.finished"]
        assert event["duration_s"] == pytest.approx(11.0)
        assert event["skipped_packets"] == 0


class TestAcceptedContainers:
    """Every container family MAIE accepts really opens, and the whitelist names real demuxers."""

    @pytest.mark.parametrize(
        "case",
        [
            ("tone.m4a", "aac", None, 48000, "stereo"),
            ("tone.webm", "libopus", None, 48000, "mono"),
            ("tone.ogg", "libopus", None, 48000, "stereo"),
            ("tone.mka", "flac", None, 44100, "stereo"),
            ("tone.aac", "aac", "adts", 44100, "mono"),
            ("tone.aiff", "pcm_s16be", None, 22050, "mono"),
            ("tone.caf", "alac", None, 44100, "stereo"),
            ("tone.w64", "pcm_s16le", None, 16000, "mono"),
            ("tone.au", "pcm_s16be", None, 8000, "mono"),
            ("tone.wv", "wavpack", None, 44100, "stereo"),
            ("tone.avi", "libmp3lame", None, 44100, "stereo"),
            ("tone.amr", "libopencore_amrnb", None, 8000, "mono"),
            ("tone.3gp", "libopencore_amrnb", None, 8000, "mono"),
            ("tone.ac3", "ac3", None, 48000, "stereo"),
        ],
        ids=lambda case: case[0],
    )
    def test_decodes(self, case, media, out):
        name, codec, container_format, rate, layout = case
        if codec not in av.codecs_available:
            pytest.skip(f"this FFmpeg build has no {codec} encoder to make the input")
        source = bad_media.write_encoded(
            media, name, codec, container_format=container_format, rate=rate, layout=layout
        )
        artifact = run(source, out)
        assert artifact.duration_s == pytest.approx(1.5, abs=0.07)
        assert dominant_frequency(read_wav(out / "preprocessed.wav"), 16000) == pytest.approx(440, abs=3)

    def test_whitelist_names_real_demuxers_and_no_dangerous_ones(self):
        names = {
            part
            for fmt in av.formats_available
            if av.ContainerFormat(fmt).is_input
            for part in av.ContainerFormat(fmt).name.split(",")
        }
        assert set(ACCEPTED_FORMATS) <= names
        dangerous = {
            "hls",
            "concat",
            "image2",
            "lavfi",
            "webm_dash_manifest",
            "rtsp",
            "sdp",
            "data",
            "mpegts",
        }
        assert not dangerous & set(ACCEPTED_FORMATS)
        assert not [name for name in ACCEPTED_FORMATS if name.endswith("pipe")]


class TestRefusals:
    """Files that are not decodable audio are refused with a 415 and leave nothing behind."""

    @pytest.mark.parametrize(
        "write",
        [
            bad_media.write_empty,
            bad_media.write_text,
            bad_media.write_truncated_wav_header,
            bad_media.write_png,
            bad_media.write_zip,
            bad_media.write_video_mp4,
        ],
    )
    def test_not_audio(self, write, media, out):
        source = write(media)
        with pytest.raises(UnsupportedMediaError) as caught:
            probe(source)
        assert caught.value.status_code == 415
        assert caught.value.detail.startswith("the file is not audio MAIE can decode (")
        assert str(source) not in caught.value.detail
        with pytest.raises(UnsupportedMediaError):
            run(source, out)
        assert_folder_holds(out)

    def test_mpeg_ts_is_not_accepted(self, media, out):
        """Streams may appear mid-file in MPEG-TS, which PyAV's demux() mishandles; see ACCEPTED_FORMATS."""
        with pytest.raises(UnsupportedMediaError, match="not an accepted"):
            run(bad_media.write_encoded(media, "tone.ts", "mp2", rate=48000), out)
        assert_folder_holds(out)

    def test_flac_cut_inside_its_header(self, media, out):
        source = bad_media.write_truncated(media, shared_audio("jfk.flac"), fraction=0.005)
        with pytest.raises(UnsupportedMediaError):
            run(source, out)
        assert_folder_holds(out)

    def test_decode_time_limit(self, out):
        options = PreprocessOptions(min_duration_s=1.0, max_duration_s=60.0, decode_time_limit_s=1e-6)
        with pytest.raises(UnsupportedMediaError, match="MAIE_DECODE_TIME_LIMIT_S"):
            run(shared_audio("jfk.flac"), out, options)
        assert_folder_holds(out)

    def test_missing_source_leaves_nothing(self, media, out):
        with pytest.raises(FileNotFoundError):
            run(media / "absent.mp3", out)
        assert_folder_holds(out)


class FifoWatch:
    """A FIFO that records whether anything opens it for reading, and never lets a reader hang.

    A thread keeps opening the write end, which returns only once a reader has opened the FIFO,
    and closes it at once: every reader sees an empty file instead of waiting for data.
    """

    def __init__(self, path: Path) -> None:
        os.mkfifo(path)
        self.path = path
        self.released = False
        self.opened = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            os.close(os.open(self.path, os.O_WRONLY))
            if self.released:
                return
            self.opened.set()

    def was_opened(self, wait_s: float = 1.0) -> bool:
        """Whether a reader opened the FIFO (waits a moment for the thread to notice)."""
        return self.opened.wait(wait_s)

    def close(self) -> None:
        self.released = True
        fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)  # wakes the thread one last time
        self.thread.join(5)
        os.close(fd)


class TestNoOtherFileIsOpened:
    """Playlists and scripts that would make FFmpeg read other files are refused unread."""

    @pytest.mark.parametrize("playlist_name", ["playlist.m3u8", "playlist.mp3"])
    def test_hls_playlist(self, playlist_name, media, out):
        watch = FifoWatch(media / "segment.ts")
        try:
            playlist = bad_media.write_hls_playlist(media, str(watch.path), name=playlist_name)
            self.refused_unread(playlist, watch, out)
        finally:
            watch.close()

    def test_ffconcat_script_named_mp3(self, media, out):
        watch = FifoWatch(media / "target.wav")
        try:
            script = bad_media.write_ffconcat_script(media, "target.wav")
            self.refused_unread(script, watch, out)
        finally:
            watch.close()

    @pytest.mark.parametrize("kind", ["hls", "ffconcat"])
    def test_control_plain_pyav_does_open_the_target(self, kind, media):
        """Without MAIE's options FFmpeg follows both, so the FIFO checks above can really fail."""
        watch = FifoWatch(media / ("segment.ts" if kind == "hls" else "target.wav"))
        try:
            if kind == "hls":
                source = bad_media.write_hls_playlist(media, str(watch.path))
            else:
                source = bad_media.write_ffconcat_script(media, watch.path.name)
            with contextlib.suppress(av.FFmpegError):  # the empty target fails later; opening is enough
                av.open(str(source)).close()
            assert watch.was_opened()
        finally:
            watch.close()

    @staticmethod
    def refused_unread(source: Path, watch: FifoWatch, out: Path) -> None:
        with pytest.raises(UnsupportedMediaError):
            probe(source)
        with pytest.raises(UnsupportedMediaError):
            run(source, out)
        assert not watch.was_opened()
        assert_folder_holds(out)


class TestDamagedAudio:
    """Truncated and corrupted uploads keep their good audio, or fail cleanly."""

    def test_truncated_flac_keeps_the_first_half(self, media, out):
        source = bad_media.write_truncated(media, shared_audio("jfk.flac"), fraction=0.5)
        artifact = run(source, out)
        assert 4.5 < artifact.duration_s < 6.5
        assert artifact.source.duration_s == pytest.approx(11.0)  # what the header still claims

    def test_truncated_mp3_keeps_the_first_half(self, media, out):
        source = bad_media.write_truncated(media, shared_audio("hotwords.mp3"), fraction=0.5)
        assert 1.5 < run(source, out).duration_s < 2.5

    @pytest.mark.parametrize("name", ["jfk.flac", "hotwords.mp3"])
    def test_bit_flips_skip_bad_packets_and_keep_the_rest(self, name, media, out):
        clean = shared_audio(name)
        source = bad_media.write_bit_flipped(media, clean)
        with capture_logs() as logs:
            artifact = run(source, out)
        (event,) = [e for e in logs if e["event"] == "preprocess.finished"]
        assert event["skipped_packets"] > 0
        assert artifact.duration_s > 0.8 * probe(clean).duration_s
        read_wav(out / "preprocessed.wav")
        assert_folder_holds(out, "preprocessed.wav")

    def test_tags_that_are_not_utf8_do_not_matter(self, media, out):
        source = bad_media.write_encoded(media, "tone.webm", "libopus", rate=48000)
        assert run(bad_media.write_bad_metadata(media, source), out).duration_s == pytest.approx(
            1.5, abs=0.01
        )

    @pytest.mark.parametrize(
        ("name", "codec", "rate"),
        [
            ("tone.webm", "libopus", 48000),
            ("tone.m4a", "aac", 44100),
            ("tone.wv", "wavpack", 44100),
            ("tone.caf", "alac", 44100),
            ("tone.w64", "pcm_s16le", 16000),
        ],
    )
    def test_random_damage_never_escapes_the_error_tree(self, name, codec, rate, media, out):
        """Flips, cuts, overwritten and inserted junk: a WAV or a MaieError, never anything else."""
        clean = bad_media.write_encoded(media, name, codec, rate=rate, seconds=3.0)
        outcomes = set()
        for seed in range(12):
            source = bad_media.write_damaged(media, clean, seed=seed)
            try:
                run(source, out, PreprocessOptions(min_duration_s=0.1, max_duration_s=60.0))
            except (UnsupportedMediaError, AudioTooShortError) as exc:
                outcomes.add(type(exc).__name__)
                assert_folder_holds(out)
            else:
                outcomes.add("ok")
                read_wav(out / "preprocessed.wav")
                (out / "preprocessed.wav").unlink()
        assert "ok" in outcomes  # most damage leaves audio worth keeping

    def test_mp3s_glued_together_with_different_rates(self, media, out):
        first, second = shared_audio("hotwords.mp3"), shared_audio("lhotse/common_voice_en_651325.mp3")
        glued = media / "glued.mp3"
        glued.write_bytes(first.read_bytes() + second.read_bytes())
        artifact = run(glued, out)
        expected = run(first, out).duration_s + run(second, out).duration_s
        assert artifact.duration_s == pytest.approx(expected, abs=0.1)


class TestDuration:
    """Length limits hold on the header and on what really decodes."""

    def test_too_short(self, media, out):
        with pytest.raises(AudioTooShortError):
            run(bad_media.write_tone_wav(media, seconds=0.3), out)
        assert_folder_holds(out)

    def test_too_long(self, out):
        options = PreprocessOptions(min_duration_s=1.0, max_duration_s=5.0)
        with pytest.raises(AudioTooLongError, match="MAIE_MAX_DURATION_S"):
            run(shared_audio("jfk_16k.wav"), out, options)
        assert_folder_holds(out)

    def test_header_claiming_hours_is_refused_before_decoding(self, media, out):
        source = bad_media.write_silent_wav(media, seconds=5 * 3600)
        with capture_logs() as logs, pytest.raises(AudioTooLongError):
            run(source, out)
        assert not [e for e in logs if e["event"] == "preprocess.too_long"]
        assert_folder_holds(out)

    def test_header_understating_the_length_is_stopped_while_decoding(self, media, out):
        source = bad_media.write_flac_with_false_length(media, shared_audio("jfk.flac"), claim=44100)
        assert probe(source).duration_s == pytest.approx(1.0)
        options = PreprocessOptions(min_duration_s=0.5, max_duration_s=5.0)
        with capture_logs() as logs, pytest.raises(AudioTooLongError):
            run(source, out, options)
        (event,) = [e for e in logs if e["event"] == "preprocess.too_long"]
        assert 5.0 < event["decoded_s"] < 5.5  # stopped as soon as the limit passed, not at 11 s
        assert_folder_holds(out)

    def test_unstated_length_is_measured(self, media, out):
        source = bad_media.write_flac_with_false_length(media, shared_audio("jfk.flac"), claim=0)
        artifact = run(source, out)
        assert artifact.duration_s == pytest.approx(11.0, abs=0.005)
        assert artifact.source.duration_s == artifact.duration_s


class TestResources:
    """Memory stays flat however long the recording; the module stays pure pipeline code."""

    def test_twenty_minutes_in_flat_memory(self, media, out):
        source = bad_media.write_silent_wav(media, seconds=20 * 60, rate=44100, channels=2)
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
        tracemalloc.start()
        try:
            artifact = run(source, out)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        rss_growth_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
        assert artifact.duration_s == pytest.approx(1200.0)
        assert (out / "preprocessed.wav").stat().st_size == 44 + 1200 * 16000 * 2
        assert peak < 5 * 2**20  # all samples kept in Python would be 38 MiB or more
        assert rss_growth_mib < 16  # the decoded input alone is 200 MiB, the output 37 MiB

    def test_imports_no_edge_libraries(self):
        code = (
            "import sys, maie.pipeline.preprocess; "
            "print(sorted({'litestar', 'dramatiq', 'redis'} & {m.split('.')[0] for m in sys.modules}))"
        )
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        assert result.stdout.strip() == "[]"
