"""Live PocketSphinx on real speech, with the real US English model: words as they are spoken."""

from __future__ import annotations

import itertools
import os
import threading
import time

import msgspec
import numpy as np
import pytest

from maie.errors import StreamFrameError, StreamOverflowError, StreamTooLongError, TransientError
from maie.pipeline.asr import AsrInput
from maie.pipeline.asr.pocketsphinx import PocketsphinxBackend, PocketsphinxOptions
from maie.pipeline.preprocess import PreprocessInput, PreprocessOptions, Preprocessor
from maie.pipeline.streaming import FinalEvent, StreamingEngine, StreamOptions, StreamRequest
from maie.pipeline.streaming.recording import read_samples
from tests.fixtures.paths import shared_audio
from tests.fixtures.wer import wer_points
from tests.unit.pipeline.streaming.conftest import pcm_at, settings_for, stream, write_wav

pytest.importorskip("pocketsphinx", reason="the pocketsphinx extra is not installed (uv sync installs it)")

#: Largest accepted gap, in WER points, between live finals and batch on the same audio.
MARGIN_POINTS = 5.0
JFK = "jfk_16k.wav"
#: Clips with exact references. Live and batch normalise differently (a running cepstral mean
#: against each utterance's own), which moves single short clips by a word or two either way, so
#: wideband accuracy is compared over all of them together.
CORPUS = (JFK, "LJ050-0131.wav", "picovoice/test.wav")
#: A short clip for the tests that only compare sessions with each other.
SHORT = "picovoice/test.wav"


@pytest.fixture(scope="module")
def settings(tmp_path_factory):
    return settings_for(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def engine(settings):
    engine = StreamingEngine(settings)
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def batch(settings):
    """Batch PocketSphinx (the backend's own ``process``) on a 16 kHz WAV, loaded once."""
    backend = PocketsphinxBackend(PocketsphinxOptions.from_settings(settings))
    backend.load()
    yield lambda wav: backend.process(AsrInput(wav_path=wav, duration_s=0.0)).text
    backend.unload()


@pytest.fixture(scope="module")
def jfk_live(engine, tmp_path_factory):
    """JFK streamed at 16 kHz in 20 ms frames, faster than real time, with word timestamps."""
    pcm = pcm_at(JFK, 16000)
    path = tmp_path_factory.mktemp("live") / "jfk.wav"
    session = engine.open(StreamRequest(backend="pocketsphinx", word_timestamps=True), path)
    return stream(session, pcm, 16000), pcm, path


def reference(name: str) -> str:
    return shared_audio(name).with_suffix(".txt").read_text(encoding="utf-8").strip()


class TestLiveRecognition:
    """Partials while speaking, finals at the ends of utterances, as accurate as batch."""

    def test_partials_arrive_while_the_clip_is_streamed(self, jfk_live):
        run, pcm, _ = jfk_live
        assert len(run.partials) >= 3
        first_at, first = run.partials[0]
        assert first_at < pcm.size / 16000 / 2
        assert first.text
        assert first.stable == ""  # PocketSphinx's hypothesis may change until the utterance ends
        assert all(p.start <= p.end for _, p in run.partials)

    def test_finals_are_committed_before_the_end_and_in_order(self, jfk_live):
        run, pcm, _ = jfk_live
        finals = [e.segment for _, e in run.finals]
        assert len(finals) >= 2
        assert run.finals[0][0] < pcm.size / 16000  # the first utterance ends before the clip does
        assert [s.id for s in finals] == list(range(1, len(finals) + 1))
        for earlier, later in itertools.pairwise(finals):
            assert earlier.end <= later.start
        for segment in finals:
            assert segment.words
            assert " ".join(w.word for w in segment.words) == segment.text
            assert all(segment.start <= w.start <= w.end <= segment.end + 0.011 for w in segment.words)

    def test_finals_are_as_accurate_as_batch(self, engine, batch, jfk_live, tmp_path):
        """WER of the live finals within 5 points of batch PocketSphinx on the same clips."""
        references, live, offline = [], [], []
        for n, name in enumerate(CORPUS):
            pcm = pcm_at(name, 16000)
            if name == JFK:
                live.append(jfk_live[0].text)
            else:
                session = engine.open(StreamRequest(backend="pocketsphinx"), tmp_path / f"{n}.wav")
                live.append(stream(session, pcm, 16000).text)
            offline.append(batch(write_wav(tmp_path / f"{n}-batch.wav", pcm, 16000)))
            references.append(reference(name))
        live_wer = wer_points(" ".join(references), " ".join(live))
        batch_wer = wer_points(" ".join(references), " ".join(offline))
        assert live_wer <= batch_wer + MARGIN_POINTS, (live_wer, batch_wer, live)

    def test_the_recording_holds_every_sample(self, jfk_live):
        _, pcm, path = jfk_live
        assert np.array_equal(read_samples(path), pcm)

    @pytest.mark.parametrize("rate", [8000, 44100])
    def test_odd_rates(self, engine, batch, tmp_path, rate):
        """8 kHz and 44.1 kHz clients: resampled like preprocessing, recognised as well as batch.

        At 8 kHz the finals are decoded again whole (narrowband), so they match batch closely.
        """
        pcm = pcm_at(JFK, rate)
        source = write_wav(tmp_path / f"jfk_{rate}.wav", pcm, rate)
        session = engine.open(StreamRequest(backend="pocketsphinx", sample_rate=rate), tmp_path / "live.wav")
        run = stream(session, pcm, rate)
        preprocessed = tmp_path / "preprocessed.wav"
        options = PreprocessOptions.from_settings(settings_for(tmp_path).audio)
        Preprocessor(options).process(PreprocessInput(source=source, target=preprocessed))
        assert np.array_equal(read_samples(tmp_path / "live.wav"), read_samples(preprocessed))
        live = wer_points(reference(JFK), run.text)
        offline = wer_points(reference(JFK), batch(preprocessed))
        assert live <= offline + MARGIN_POINTS, (rate, live, offline, run.text)


@pytest.fixture(scope="module")
def short(engine, tmp_path_factory):
    """The short clip once through a session: (pcm, finals)."""
    pcm = pcm_at(SHORT, 16000)
    path = tmp_path_factory.mktemp("short") / "s.wav"
    run = stream(engine.open(StreamRequest(backend="pocketsphinx", word_timestamps=True), path), pcm, 16000)
    return pcm, [e.segment for _, e in run.finals]


class TestDecoders:
    """One decoder per session, reused between sessions, never shared by two at once."""

    def test_a_reused_decoder_starts_afresh(self, engine, short, jfk_live, tmp_path):
        """A pooled decoder that heard other speech says exactly what a session said before."""
        pcm, finals = short
        request = StreamRequest(backend="pocketsphinx", word_timestamps=True)
        again = stream(engine.open(request, tmp_path / "a.wav"), pcm, 16000)
        assert [e.segment for _, e in again.finals] == finals

    def test_concurrent_sessions_do_not_disturb_each_other(self, engine, short, tmp_path):
        pcm, finals = short
        results: dict[int, list] = {}

        def one(n: int) -> None:
            request = StreamRequest(backend="pocketsphinx", word_timestamps=True)
            run = stream(engine.open(request, tmp_path / f"{n}.wav"), pcm, 16000)
            results[n] = [e.segment for _, e in run.finals]

        threads = [threading.Thread(target=one, args=(n,)) for n in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(300)
        assert results == {0: finals, 1: finals}


def push_all(session, pcm: np.ndarray, *, poll: bool) -> int:
    """Push 20 ms frames until the session refuses one; the samples pushed, refused one included."""
    pushed = 0
    for offset in range(0, pcm.size, 320):
        pushed = min(offset + 320, pcm.size)
        session.push(pcm[offset:pushed].tobytes())
        if poll:
            session.poll()
    return pushed


class TestRecognizerProcess:
    """PocketSphinx decodes in a child process (its binding holds the GIL); a dead child fails alone."""

    def test_a_killed_child_ends_its_session_cleanly(self, engine, tmp_path):
        pcm = pcm_at(SHORT, 16000)
        session = engine.open(StreamRequest(backend="pocketsphinx"), tmp_path / "k.wav")
        child = session._recognizer._child
        assert child.process.pid != os.getpid()
        session.push(pcm[:16000].tobytes())
        child.process.kill()
        child.process.join(30)
        with pytest.raises(TransientError, match="recognizer process stopped"):
            session.poll()
        session.close()  # nothing left to give back, and no error
        assert read_samples(tmp_path / "k.wav").size == 16000
        again = stream(engine.open(StreamRequest(backend="pocketsphinx"), tmp_path / "n.wav"), pcm, 16000)
        assert again.finals


class TestLimits:
    """A client faster than transcription is told so; sessions end at their length limit."""

    def engine_with(self, settings, **limits):
        return StreamingEngine(settings, options=msgspec.structs.replace(StreamOptions(), **limits))

    def test_overflow_past_the_backlog_bound(self, settings, tmp_path):
        engine = self.engine_with(settings, max_backlog_s=2.0)
        pcm = pcm_at(JFK, 16000)
        session = engine.open(StreamRequest(backend="pocketsphinx"), tmp_path / "o.wav")
        with pytest.raises(StreamOverflowError) as caught:
            push_all(session, pcm, poll=False)  # nothing is transcribed
        assert caught.value.code == "stream_overflow"
        assert "MAIE_STREAM_MAX_BACKLOG_S" in caught.value.detail
        received = round(session.received_s * 16000)
        assert 2.0 < received / 16000 <= 2.0 + 0.02
        with pytest.raises(StreamOverflowError):
            session.push(pcm[received : received + 320].tobytes())
        events = session.finish()  # what was queued is still transcribed
        assert np.array_equal(read_samples(tmp_path / "o.wav"), pcm[:received])
        assert any(isinstance(e, FinalEvent) for e in events)
        engine.close()

    def test_a_poller_that_keeps_up_never_overflows(self, settings, tmp_path):
        engine = self.engine_with(settings, max_backlog_s=1.0)
        session = engine.open(StreamRequest(backend="pocketsphinx"), tmp_path / "k.wav")
        run = stream(session, pcm_at(SHORT, 16000), 16000)
        assert run.finals
        engine.close()

    def test_maximum_session_length(self, settings, tmp_path):
        engine = self.engine_with(settings, max_session_s=1.5)
        session = engine.open(StreamRequest(backend="pocketsphinx"), tmp_path / "l.wav")
        with pytest.raises(StreamTooLongError) as caught:
            push_all(session, pcm_at(JFK, 16000), poll=True)
        assert caught.value.code == "stream_too_long"
        assert session.received_s == 1.5
        session.finish()
        assert read_samples(tmp_path / "l.wav").size == 24000
        engine.close()

    def test_bad_frames_are_refused_and_the_session_goes_on(self, engine, tmp_path):
        session = engine.open(StreamRequest(backend="pocketsphinx"), tmp_path / "b.wav")
        with pytest.raises(StreamFrameError, match="whole 2-byte samples"):
            session.push(b"\x00\x01\x02")
        with pytest.raises(StreamFrameError, match="MAIE_STREAM_MAX_FRAME_BYTES"):
            session.push(bytes(engine.options.max_frame_bytes + 2))
        session.push(bytes(640))
        assert session.received_s == pytest.approx(0.02)
        session.finish()

    def test_close_waits_for_a_running_poll(self, engine, tmp_path):
        """close() from another thread never takes the decoder away from a poll in progress."""
        pcm = pcm_at(JFK, 16000)
        session = engine.open(StreamRequest(backend="pocketsphinx"), tmp_path / "c.wav")
        session.push(pcm[: 16000 * 4].tobytes())
        worker = threading.Thread(target=session.poll)
        worker.start()
        deadline = time.monotonic() + 30
        while session.backlog_s > 0 and time.monotonic() < deadline:
            time.sleep(0.001)  # until the poll has taken the queue
        session.close()
        worker.join(30)
        assert not worker.is_alive()
        assert session.poll() == []
