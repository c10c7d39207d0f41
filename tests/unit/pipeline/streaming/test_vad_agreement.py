"""Online Silero VAD against faster-whisper's batch VAD, and the LocalAgreement-2 buffer."""

from __future__ import annotations

import numpy as np
import pytest
from faster_whisper.vad import VadOptions, get_speech_timestamps, get_vad_model

from maie.pipeline.streaming.agreement import HypothesisBuffer, TimedWord
from maie.pipeline.streaming.vad import WINDOW, SileroVad, SpeechGate
from tests.unit.pipeline.streaming.conftest import pcm_at


@pytest.fixture(scope="module")
def vad():
    return SileroVad()


@pytest.fixture(scope="module")
def jfk():
    return pcm_at("jfk_16k.wav", 16000).astype(np.float32) / 32768


class TestSileroOnline:
    def test_probabilities_equal_batch_vad_whatever_the_chunking(self, vad, jfk):
        """State and context carried between calls give faster-whisper's own probabilities."""
        usable = jfk[: jfk.size // WINDOW * WINDOW]
        expected = np.asarray(get_vad_model()(usable)).reshape(-1)
        rng = np.random.default_rng(0)
        stream, got, offset = vad.stream(), [], 0
        while offset < usable.size:
            size = int(rng.integers(1, 5000))
            got.append(stream.push(usable[offset : offset + size]))
            offset += size
        probs = np.concatenate(got)
        assert probs.size == expected.size
        np.testing.assert_allclose(probs, expected, atol=1e-4)
        assert probs.max() > 0.9  # speech is there
        assert probs.min() < 0.1  # and pauses

    def test_gate_finds_the_speech_batch_vad_finds(self, vad, jfk):
        """Starts and ends as get_speech_timestamps decides them (no padding), within a window."""
        options = VadOptions(threshold=0.5, min_silence_duration_ms=500, speech_pad_ms=0)
        expected = get_speech_timestamps(jfk, options)
        gate, found = SpeechGate(threshold=0.5, min_silence_ms=500), []
        for i, prob in enumerate(vad.stream().push(jfk)):
            change = gate.update(float(prob), i * WINDOW)
            if change == "start":
                found.append([gate.start, None])
            elif change == "end":
                found[-1][1] = gate.end
        if found and found[-1][1] is None:
            found[-1][1] = jfk.size
        assert len(found) == len(expected)
        for (start, end), batch in zip(found, expected, strict=True):
            assert abs(start - batch["start"]) <= WINDOW
            assert abs(end - batch["end"]) <= WINDOW


def words(*spec: tuple[float, str]) -> list[TimedWord]:
    return [TimedWord(start, start + 0.3, text) for start, text in spec]


class TestLocalAgreement:
    def test_commits_the_common_prefix_of_two_hypotheses(self):
        buffer = HypothesisBuffer()
        buffer.insert(words((0.0, " ask"), (0.4, " not"), (0.8, " what")))
        assert buffer.flush() == []  # nothing to agree with yet
        buffer.insert(words((0.0, " Ask"), (0.4, " not,"), (0.8, " when"), (1.2, " your")))
        committed = buffer.flush()
        assert [w.text for w in committed] == [" Ask", " not,"]  # case and punctuation ignored
        assert [w.text for w in buffer.tentative] == [" when", " your"]
        assert buffer.committed_until == pytest.approx(0.7)

    def test_words_before_the_committed_ones_are_ignored(self):
        buffer = HypothesisBuffer()
        for _ in range(2):
            buffer.insert(words((0.0, " ask"), (0.4, " not")))
            buffer.flush()
        buffer.insert(words((0.0, " ask"), (0.4, " not"), (0.8, " what")))
        assert buffer.flush() == []
        assert [w.text for w in buffer.tentative] == [" what"]

    def test_a_repeated_ngram_at_the_seam_is_dropped(self):
        """A window that still holds committed audio says those words again, with new times."""
        buffer = HypothesisBuffer()
        for _ in range(2):
            buffer.insert(words((0.0, " ask"), (0.4, " not")))
            buffer.flush()
        buffer.insert(words((0.65, " ask"), (0.9, " not"), (1.2, " what")))
        buffer.flush()
        assert [w.text for w in buffer.tentative] == [" what"]

    def test_forget_until(self):
        buffer = HypothesisBuffer()
        for _ in range(2):
            buffer.insert(words((0.0, " ask"), (0.4, " not"), (0.8, " what")))
            buffer.flush()
        buffer.forget_until(0.75)
        assert [w.text for w in buffer.committed] == [" what"]
