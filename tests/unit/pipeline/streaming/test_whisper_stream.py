"""Live Whisper with the real faster-whisper on the tiny random model, on real speech.

The model's words are gibberish but deterministic, so these tests compare live output with the
batch backend's output of the same model on the same audio, and check the LocalAgreement policy's
promises (agreed words never change, segments in order, long speech cut), never the words.
"""

from __future__ import annotations

import itertools
import threading

import msgspec
import numpy as np
import pytest

from maie.errors import BackendUnavailableError
from maie.pipeline.asr import AsrInput, create
from maie.pipeline.preprocess import PreprocessInput, PreprocessOptions, Preprocessor
from maie.pipeline.streaming import FinalEvent, StreamingEngine, StreamOptions, StreamRequest
from maie.pipeline.streaming.recording import read_samples
from tests.fixtures.wer import wer_points
from tests.unit.pipeline.streaming.conftest import pcm_at, settings_for, stream, tiny_whisper_env, write_wav

#: Largest accepted gap, in WER points, between live finals and batch on the same audio.
MARGIN_POINTS = 5.0
JFK = "jfk_16k.wav"
#: 16 s of continuous reading: no pause long enough to end a segment.
LONG_READING = "lhotse/libri-1088-134315-0000.wav"


def engine_for(settings, **options) -> StreamingEngine:
    return StreamingEngine(
        settings, options=msgspec.structs.replace(StreamOptions.from_settings(settings), **options)
    )


def words_of(artifact) -> str:
    """A batch transcript as its word list: what live Whisper commits (random tokens do not
    always form words, so the tiny model's segment text can hold tokens its words lack)."""
    return " ".join(w.word.strip() for s in artifact.segments for w in s.words or [])


@pytest.fixture(scope="module")
def settings(tiny_whisper_dir, tmp_path_factory):
    return settings_for(tmp_path_factory.mktemp("data"), **tiny_whisper_env(tiny_whisper_dir))


@pytest.fixture(scope="module")
def engine(settings):
    engine = StreamingEngine(settings)
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def jfk_live(engine, tmp_path_factory):
    """JFK streamed in 20 ms frames, faster than real time, with the default cadence."""
    pcm = pcm_at(JFK, 16000)
    path = tmp_path_factory.mktemp("live") / "jfk.wav"
    return stream(engine.open(StreamRequest(backend="whisper", word_timestamps=True), path), pcm, 16000), pcm


@pytest.fixture(scope="module")
def whole_window(tiny_whisper_dir, tmp_path_factory):
    """Settings where the clip is one window, decoded once at its end: padding reaches back to
    the first sample, the endpoint silence outlasts every pause, no partial re-decodes."""
    env = tiny_whisper_env(tiny_whisper_dir) | {
        "MAIE_WHISPER_VAD_FILTER": "false",
        "MAIE_WHISPER_VAD_SPEECH_PAD_MS": "2000",
        "MAIE_STREAM_ENDPOINT_SILENCE_MS": "10000",
    }
    settings = settings_for(tmp_path_factory.mktemp("whole"), **env)
    engine = engine_for(settings, partial_interval_s=1e9)
    yield settings, engine
    engine.close()


@pytest.fixture(scope="module")
def reading_live(settings, tmp_path_factory):
    """16 s of continuous reading as one long segment: many re-decodes of a growing window."""
    engine = engine_for(settings, endpoint_silence_ms=10_000)
    path = tmp_path_factory.mktemp("reading") / "r.wav"
    run = stream(engine.open(StreamRequest(backend="whisper"), path), pcm_at(LONG_READING, 16000), 16000)
    engine.close()
    return run


class TestSameModelAsBatch:
    """One decode of one window is exactly the batch backend's decode of that audio."""

    @pytest.mark.parametrize("rate", [16000, 8000, 44100])
    def test_finals_match_batch_at_any_rate(self, whole_window, tmp_path, rate):
        settings, engine = whole_window
        pcm = pcm_at(JFK, rate)
        run = stream(
            engine.open(StreamRequest(backend="whisper", sample_rate=rate), tmp_path / "l.wav"), pcm, rate
        )
        preprocessed = tmp_path / "preprocessed.wav"
        options = PreprocessOptions.from_settings(settings.audio)
        Preprocessor(options).process(
            PreprocessInput(source=write_wav(tmp_path / "in.wav", pcm, rate), target=preprocessed)
        )
        assert np.array_equal(read_samples(tmp_path / "l.wav"), read_samples(preprocessed))
        with create("whisper", settings) as batch:
            expected = words_of(
                batch.process(AsrInput(wav_path=preprocessed, duration_s=0.0, word_timestamps=True))
            )
        assert expected
        assert wer_points(expected, run.text) <= MARGIN_POINTS, (expected, run.text)


class TestLocalAgreement:
    """Partials while speaking; agreed words never change; segments in order."""

    def test_partials_arrive_before_the_end(self, jfk_live):
        run, pcm = jfk_live
        assert run.partials
        assert run.partials[0][0] < pcm.size / 16000 / 2
        assert len(run.finals) >= 2
        assert run.finals[0][0] < pcm.size / 16000

    def test_agreed_words_never_change(self, reading_live):
        """Every partial's stable part begins the text that the session finally commits."""
        run = reading_live
        finals_after: list[str] = []
        seen = 0
        for _, event in reversed(run.events):
            if isinstance(event, FinalEvent):
                finals_after.insert(0, event.segment.text)
                seen += 1
            else:
                committed_later = " ".join(t for t in finals_after if t)
                assert event.text.startswith(event.stable)
                assert " ".join(committed_later.split()).startswith(" ".join(event.stable.split())), (
                    event.stable,
                    committed_later,
                )
        assert seen == len(run.finals)
        assert any(p.stable for _, p in run.partials)

    def test_segments_are_numbered_ordered_and_inside_the_audio(self, jfk_live):
        run, pcm = jfk_live
        segments = [e.segment for _, e in run.finals]
        assert [s.id for s in segments] == list(range(1, len(segments) + 1))
        for earlier, later in itertools.pairwise(segments):
            assert earlier.end <= later.start
        for segment in segments:
            assert 0 <= segment.start <= segment.end <= pcm.size / 16000
            assert segment.words is not None
            assert all(segment.start <= w.start <= w.end <= segment.end for w in segment.words)

    def test_long_speech_is_cut_at_committed_segments(self, settings, tmp_path):
        """Continuous speech longer than the trim length gives finals while it goes on."""
        engine = engine_for(settings, endpoint_silence_ms=10_000, window_trim_s=4.0)
        pcm = pcm_at(LONG_READING, 16000)
        run = stream(engine.open(StreamRequest(backend="whisper"), tmp_path / "t.wav"), pcm, 16000)
        engine.close()
        assert len(run.finals) >= 2
        assert run.finals[0][0] < pcm.size / 16000 - 4.0
        for _, final in run.finals:
            assert final.segment.end - final.segment.start <= 28.0

    def test_no_window_outgrows_whisper(self, settings, tmp_path):
        """Without pauses or agreement to cut at, a window still ends at Whisper's 30 s."""
        engine = engine_for(settings, endpoint_silence_ms=10_000, window_trim_s=28.0)
        pcm = np.tile(pcm_at(LONG_READING, 16000), 3)  # 48 s of speech without a long pause
        run = stream(engine.open(StreamRequest(backend="whisper"), tmp_path / "m.wav"), pcm, 16000)
        engine.close()
        assert len(run.finals) >= 2
        assert all(e.segment.end - e.segment.start <= 28.0 for _, e in run.finals)


class TestSharing:
    """One model for every session of the process."""

    def test_concurrent_sessions_say_what_one_says_alone(self, engine, jfk_live, tmp_path):
        run, pcm = jfk_live
        alone = [e.segment for _, e in run.finals]
        results: dict[int, list] = {}

        def one(n: int) -> None:
            request = StreamRequest(backend="whisper", word_timestamps=True)
            results[n] = [
                e.segment for _, e in stream(engine.open(request, tmp_path / f"{n}.wav"), pcm, 16000).finals
            ]

        threads = [threading.Thread(target=one, args=(n,)) for n in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(300)
        assert results == {0: alone, 1: alone, 2: alone}

    def test_language_is_detected_once(self, tiny_whisper_dir, tmp_path):
        env = tiny_whisper_env(tiny_whisper_dir)
        del env["MAIE_WHISPER_LANGUAGE"]
        engine = StreamingEngine(settings_for(tmp_path, **env))
        session = engine.open(StreamRequest(backend="whisper"), tmp_path / "d.wav")
        assert session.language is None
        run = stream(session, pcm_at(JFK, 16000), 16000)
        engine.close()
        assert run.finals
        assert isinstance(session.language, str)
        assert session.language

    def test_silence_says_nothing(self, engine, tmp_path):
        run = stream(
            engine.open(StreamRequest(backend="whisper"), tmp_path / "s.wav"),
            np.zeros(16000 * 3, np.int16),
            16000,
        )
        assert run.events == []

    def test_backends_that_cannot_stream_are_refused(self, engine, tmp_path):
        with pytest.raises(BackendUnavailableError, match="cannot transcribe live"):
            engine.open(StreamRequest(backend="chunkformer"), tmp_path / "c.wav")
