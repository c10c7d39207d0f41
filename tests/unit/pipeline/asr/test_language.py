"""Language detection over speech windows spread across a recording (the aggregation, with doubles)."""

from __future__ import annotations

import wave

import numpy as np
import pytest

from maie.pipeline.asr.language import SAMPLE_RATE, LanguageDetector, spread
from maie.pipeline.asr.wav_windows import WavWindows

SECOND = SAMPLE_RATE


class ScriptedScorer:
    """Test double of the Whisper window scorer: answers by the window's marker value and records calls.

    Each test fills audio with a constant "marker" per region; the double maps markers to the
    probabilities a real model would give for that region.
    """

    def __init__(self, answers: dict[float, list[tuple[str, float]]]) -> None:
        self.answers = answers
        self.windows: list[float] = []

    def __call__(self, window):
        marker = round(float(np.median(window)), 2)
        self.windows.append(marker)
        return self.answers[marker]


def all_speech(audio):
    """Test double of VAD: everything is speech."""
    return [{"start": 0, "end": audio.size}]


def regions(*parts: tuple[float, float]) -> np.ndarray:
    """Audio made of (marker, seconds) regions."""
    return np.concatenate([np.full(int(seconds * SECOND), marker, np.float32) for marker, seconds in parts])


class TestSpread:
    @pytest.mark.parametrize(
        ("count", "picks", "expected"),
        [(10, 3, [0, 4, 9]), (2, 3, [0, 1]), (5, 1, [0]), (1, 4, [0]), (4, 4, [0, 1, 2, 3]), (7, 2, [0, 6])],
    )
    def test_first_and_last_included(self, count, picks, expected):
        assert spread(count, picks) == expected


class TestAggregation:
    def test_first_confident_window_does_not_decide(self):
        """A confident greeting in German, then 60 s of English: English wins on the mean.

        faster-whisper would stop at the first window above its 0.5 threshold (German).
        """
        scorer = ScriptedScorer(
            {0.1: [("de", 0.9), ("en", 0.1)], 0.2: [("en", 0.8), ("de", 0.2)]},
        )
        detector = LanguageDetector(score=scorer, find_speech=all_speech, windows=3)

        detection = detector.detect(regions((0.1, 30), (0.2, 60)))

        assert detection.language == "en"
        assert detection.probability == pytest.approx((0.1 + 0.8 + 0.8) / 3)
        assert scorer.windows == [0.1, 0.2, 0.2]
        assert detection.windows_s == (0.0, 30.0, 60.0)

    def test_windows_spread_over_the_whole_recording(self):
        """Ten minutes of speech, three windows: start, middle and end are heard."""
        scorer = ScriptedScorer({0.1: [("en", 0.6)], 0.2: [("en", 0.6)], 0.3: [("en", 0.6)]})
        detector = LanguageDetector(score=scorer, find_speech=all_speech, windows=3)

        detection = detector.detect(regions((0.1, 200), (0.2, 200), (0.3, 200)))

        assert scorer.windows == [0.1, 0.2, 0.3]
        assert detection.windows_s == (0.0, 300.0, 570.0)

    def test_only_speech_is_heard(self):
        """A 45 s intro the VAD rejects is never scored."""
        scorer = ScriptedScorer({0.5: [("vi", 0.7), ("en", 0.3)]})

        def speech_after_intro(audio):
            return [{"start": 45 * SECOND, "end": audio.size}]

        detector = LanguageDetector(score=scorer, find_speech=speech_after_intro, windows=3)

        detection = detector.detect(regions((0.9, 45), (0.5, 20)))

        assert (detection.language, scorer.windows) == ("vi", [0.5])

    def test_short_tail_window_is_dropped_and_weights_follow_length(self):
        """A 0.5 s tail is not scored; a 15 s window counts half as much as a full one."""
        scorer = ScriptedScorer({0.1: [("en", 1.0)], 0.2: [("fr", 1.0)]})
        detector = LanguageDetector(score=scorer, find_speech=all_speech, windows=5)

        tail = detector.detect(regions((0.1, 30), (0.2, 0.5)))
        weighted = detector.detect(regions((0.1, 30), (0.2, 30), (0.1, 15)))

        assert tail.language == "en"
        assert tail.windows_s == (0.0,)
        assert weighted.language == "en"
        assert weighted.probability == pytest.approx(1.5 / 2.5)

    def test_no_speech_scores_the_whole_audio(self):
        scorer = ScriptedScorer({0.0: [("en", 0.4), ("de", 0.3)]})
        detector = LanguageDetector(score=scorer, find_speech=lambda _audio: [], windows=3)

        assert detector.detect(np.zeros(3 * SECOND, np.float32)).language == "en"

    def test_a_wav_read_in_windows_gives_the_same_answer(self, tmp_path):
        """Speech found window by window, windows read back from the file: as with the whole array."""
        audio = regions((0.1, 200), (0.2, 200), (0.3, 200))
        path = tmp_path / "long.wav"
        with wave.open(str(path), "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(SAMPLE_RATE)
            out.writeframes((audio * 32768).astype("<i2").tobytes())
        answers = {0.1: [("en", 0.6)], 0.2: [("de", 0.5)], 0.3: [("en", 0.7)]}
        in_memory = LanguageDetector(score=ScriptedScorer(answers), find_speech=all_speech).detect(audio)
        scorer = ScriptedScorer(answers)
        with WavWindows(path, window_s=90) as source:
            from_file = LanguageDetector(score=scorer, find_speech=all_speech).detect(source)

        assert scorer.windows == [0.1, 0.2, 0.3]
        assert from_file.windows_s == in_memory.windows_s
        assert from_file.language == in_memory.language == "en"
        assert from_file.probability == pytest.approx(in_memory.probability)

    def test_speech_is_gathered_across_windows(self):
        """Speech regions split by window boundaries are joined back on the speech-only timeline."""

        class Pieces:
            """Test double of a windowed source: the array in 10 s windows."""

            def __init__(self, audio):
                self.audio, self.size = audio, audio.size

            def windows(self):
                for start in range(0, self.size, 10 * SECOND):
                    yield start, self.audio[start : start + 10 * SECOND]

            def read(self, start, stop):
                return self.audio[start:stop]

        def loud_only(window):
            """Test double of VAD: samples above 0.4 are speech."""
            speech = np.flatnonzero(window > 0.4)
            return [{"start": int(speech[0]), "end": int(speech[-1]) + 1}] if speech.size else []

        scorer = ScriptedScorer({0.5: [("vi", 0.9)]})
        audio = regions((0.0, 25), (0.5, 30), (0.0, 25))  # 30 s of speech across three windows
        detection = LanguageDetector(score=scorer, find_speech=loud_only, windows=3).detect(Pieces(audio))

        assert scorer.windows == [0.5], "one window of 30 s of speech, gathered from three pieces"
        assert detection.language == "vi"

    def test_empty_audio(self):
        detector = LanguageDetector(score=ScriptedScorer({}), find_speech=all_speech)
        with pytest.raises(ValueError, match="empty"):
            detector.detect(np.zeros(0, np.float32))
