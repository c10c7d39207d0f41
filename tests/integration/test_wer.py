"""The word-error-rate guard: preprocessing must not damage audio, whatever the input format.

Random-weight Whisper cannot tell a good transcript from a broken one, so this guard uses a real
recognizer, PocketSphinx. For each input format, MAIE's transcript (upload → preprocess →
``pocketsphinx`` backend, over HTTP with a real worker) must score within
:data:`~tests.fixtures.wer.MARGIN_POINTS` WER points of bare PocketSphinx on the same clip
converted to 16 kHz mono by FFmpeg's command-line tool. The second class shows the guard has teeth:
with MAIE's resampling deliberately broken, the same comparison fails.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import av
import pytest

from maie.config import Settings
from maie.pipeline import preprocess
from maie.pipeline.asr import AsrInput
from maie.pipeline.asr.pocketsphinx import PocketsphinxBackend, PocketsphinxOptions
from maie.pipeline.preprocess import PreprocessInput, PreprocessOptions, Preprocessor
from tests.fixtures.wer import CLIPS, MARGIN_POINTS, bare_pocketsphinx, reference_pcm, wer_points

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator
    from pathlib import Path

pytest.importorskip("pocketsphinx", reason="the pocketsphinx extra is not installed (uv sync installs it)")

#: A clip the recognizer mostly fails on cannot show damage; the guard's clips stay under this.
USEFUL_BARE_WER = 60.0
BY_NAME = {clip.name: clip for clip in CLIPS}

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("wer-clips")


@pytest.fixture(scope="module")
def bare_wer(clip_dir: Path) -> Callable[[str], float]:
    """WER of bare PocketSphinx on a clip, computed once per clip and module."""
    cache: dict[str, float] = {}

    def wer_of(name: str) -> float:
        if name not in cache:
            clip = BY_NAME[name]
            cache[name] = wer_points(clip.reference(), bare_pocketsphinx(reference_pcm(clip.make(clip_dir))))
        return cache[name]

    return wer_of


class TestWerGuard:
    """Through the API, for every input format."""

    @pytest.mark.parametrize("clip", CLIPS, ids=lambda clip: clip.name)
    def test_maie_matches_bare_pocketsphinx(self, api, worker, clip_dir, bare_wer, clip):
        """MAIE's WER is within the margin of bare PocketSphinx on the reference conversion."""
        path = clip.make(clip_dir)
        accepted = api.submit(path, asr_backend="pocketsphinx")
        assert accepted.status_code == 202, accepted.text
        bare = bare_wer(clip.name)  # decoded here while the worker transcribes

        status = api.wait(accepted.json()["task_id"])

        assert status["status"] == "COMPLETE", status
        assert status["versions"]["asr_backend"]["name"] == "pocketsphinx"
        maie = wer_points(clip.reference(), status["results"]["raw_transcript"])
        assert bare < USEFUL_BARE_WER, f"bare WER {bare:.1f} is too high for this clip to guard anything"
        assert abs(maie - bare) <= MARGIN_POINTS, (
            f"{clip.name}: MAIE WER {maie:.1f} vs bare PocketSphinx {bare:.1f} "
            f"(gap {maie - bare:+.1f} points, margin {MARGIN_POINTS})"
        )


def _left_channel_only(frames: Iterable[av.AudioFrame], rate: int) -> Iterator[av.AudioFrame]:
    """Sabotage: drop every channel but the first, then resample as MAIE does."""

    def first_channel() -> Iterator[av.AudioFrame]:
        for frame in frames:
            samples = frame.to_ndarray()
            mono = samples[:1] if frame.format.is_planar else samples[:, :: len(frame.layout.channels)]
            out = av.AudioFrame.from_ndarray(mono.copy(), format=frame.format.name, layout="mono")
            out.sample_rate = frame.sample_rate
            yield out

    return REAL_RESAMPLED(first_channel(), rate)


def _source_rate_kept(frames: Iterable[av.AudioFrame], rate: int) -> Iterator[av.AudioFrame]:
    """Sabotage: mix to mono but keep the source rate, while the WAV still says 16 kHz."""
    frames = list(frames)
    return REAL_RESAMPLED(iter(frames), frames[0].sample_rate if frames else rate)


def _rate_off_by_ten_percent(frames: Iterable[av.AudioFrame], rate: int) -> Iterator[av.AudioFrame]:
    """Sabotage: resample to 17.6 kHz instead of 16 kHz (speech 10 % slower when read at 16 kHz)."""
    return REAL_RESAMPLED(frames, int(rate * 1.1))


REAL_RESAMPLED = preprocess._resampled


@pytest.fixture(scope="module")
def pocketsphinx_backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PocketsphinxBackend]:
    data = tmp_path_factory.mktemp("ps-data")
    settings = Settings.from_env({"MAIE_DATA_DIR": str(data)}, env_file=None)
    backend = PocketsphinxBackend(PocketsphinxOptions.from_settings(settings))
    backend.load()
    yield backend
    backend.unload()


@pytest.fixture
def in_process_gap(tmp_path, clip_dir, bare_wer, pocketsphinx_backend) -> Callable[[str], float]:
    """Gap to bare PocketSphinx of MAIE's preprocess + backend run in this process on a clip."""

    def gap(name: str) -> float:
        clip = BY_NAME[name]
        wav = tmp_path / f"{name}.wav"
        with Preprocessor(PreprocessOptions(min_duration_s=0.0, max_duration_s=3600.0)) as stage:
            audio = stage.process(PreprocessInput(source=clip.make(clip_dir), target=wav))
        text = pocketsphinx_backend.process(AsrInput(wav_path=wav, duration_s=audio.duration_s)).text
        return wer_points(clip.reference(), text) - bare_wer(name)

    return gap


class TestGuardHasTeeth:
    """The same comparison, in process, with MAIE's resampling deliberately broken, must fail."""

    @pytest.mark.parametrize(
        ("sabotage", "caught_on"),
        [
            (_left_channel_only, ["wav-44k-stereo-talker-per-channel"]),
            (_source_rate_kept, ["wav-8k-mono"]),
            (_rate_off_by_ten_percent, ["mp3-44k-stereo", "wav-8k-mono"]),
        ],
        ids=["left-channel-only", "source-rate-kept", "rate-off-by-10-percent"],
    )
    def test_broken_resampling_exceeds_the_margin(self, monkeypatch, in_process_gap, sabotage, caught_on):
        """Each sabotage pushes the gap past the margin on the formats it damages."""
        monkeypatch.setattr(preprocess, "_resampled", sabotage)
        for name in caught_on:
            gap = in_process_gap(name)
            assert abs(gap) > MARGIN_POINTS, f"{name}: {sabotage.__name__} went unnoticed (gap {gap:+.1f})"
