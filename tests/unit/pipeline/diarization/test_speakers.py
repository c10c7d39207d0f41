from __future__ import annotations

import msgspec
import pytest

from maie.pipeline.diarization import assign_speakers, read_rttm, relabel, speaker_stats, write_rttm
from maie.pipeline.diarization.rttm import RttmError
from maie.schemas import Segment, SpeakerTurn, Word


def turn(start, end, who):
    return SpeakerTurn(start=start, end=end, speaker=who)


def word(start, end, text):
    return Word(start=start, end=end, word=text, probability=0.9)


def test_relabel_numbers_speakers_in_order_of_first_appearance():
    turns = relabel([turn(5, 6, "bob"), turn(0, 1, "carol"), turn(2, 3, "bob"), turn(7, 7, "dave")])
    assert [(t.start, t.speaker) for t in turns] == [(0, "SPEAKER_00"), (2, "SPEAKER_01"), (5, "SPEAKER_01")]


def test_segment_straddling_a_change_is_split_at_the_word_boundary():
    words = [
        word(0.0, 0.4, " Hello"),
        word(0.5, 0.9, " there."),
        word(1.2, 1.6, " Hi"),
        word(1.7, 2.0, " Bob."),
    ]
    segment = Segment(id=1, start=0.0, end=2.1, text="Hello there. Hi Bob.", words=words, confidence=0.8)
    later = Segment(id=2, start=3.0, end=4.0, text="Bye.")
    result = assign_speakers(
        [segment, later], [turn(0.0, 1.0, "x"), turn(1.1, 2.1, "y"), turn(2.9, 4.0, "x")]
    )
    assert [(s.id, s.start, s.end, s.text, s.speaker) for s in result.segments] == [
        (1, 0.0, 0.9, "Hello there.", "SPEAKER_00"),
        (2, 1.2, 2.1, "Hi Bob.", "SPEAKER_01"),
        (3, 3.0, 4.0, "Bye.", "SPEAKER_00"),
    ]
    assert [w.speaker for w in result.segments[0].words or []] == ["SPEAKER_00", "SPEAKER_00"]
    assert [w.speaker for w in result.segments[1].words or []] == ["SPEAKER_01", "SPEAKER_01"]
    assert result.speakers[0].id == "SPEAKER_00"
    assert (result.speakers[0].speaking_time_s, result.speakers[0].segment_count) == (2.1, 2)
    assert (result.speakers[1].speaking_time_s, result.speakers[1].segment_count) == (1.0, 1)
    assert result.speakers[0].name is None


def test_words_without_spaces_are_joined_with_spaces():
    words = [word(0, 0.3, "yes"), word(0.4, 0.6, "no"), word(1.0, 1.3, "maybe")]
    segment = Segment(id=1, start=0, end=1.3, text="yes no maybe", words=words)
    result = assign_speakers([segment], [turn(0, 0.7, "a"), turn(0.8, 1.4, "b")])
    assert [s.text for s in result.segments] == ["yes no", "maybe"]


def test_word_in_a_gap_takes_the_nearest_turn_and_segment_without_words_the_majority():
    segment = Segment(id=1, start=0, end=3, text="a b")
    gap_word = Segment(id=2, start=3.2, end=3.4, text="c", words=[word(3.2, 3.4, "c")])
    result = assign_speakers([segment, gap_word], [turn(0, 1, "a"), turn(1, 3, "b"), turn(3.5, 4, "a")])
    assert [s.speaker for s in result.segments] == ["SPEAKER_01", "SPEAKER_00"]


def test_no_turns_leaves_speakers_unset():
    segment = Segment(id=1, start=0, end=1, text="hm", words=[word(0, 1, "hm")])
    result = assign_speakers([segment], [])
    assert result.segments[0].speaker is None
    assert result.segments[0].words[0].speaker is None  # type: ignore[index]
    assert result.speakers == []


def test_speakers_found_by_diarization_but_given_no_segment_are_listed():
    stats = speaker_stats(relabel([turn(0, 1, "a"), turn(1, 1.5, "b")]), [])
    assert [(s.id, s.speaking_time_s, s.segment_count) for s in stats] == [
        ("SPEAKER_00", 1.0, 0),
        ("SPEAKER_01", 0.5, 0),
    ]


def test_segments_stored_before_diarization_still_decode():
    old = (
        b'{"id":1,"start":0.0,"end":1.0,"text":"x","words":[{"start":0,"end":1,"word":"x","probability":1}]}'
    )
    segment = msgspec.json.decode(old, type=Segment)
    assert segment.speaker is None
    assert segment.words[0].speaker is None  # type: ignore[index]
    assert b"speaker" not in msgspec.json.encode(segment)


def test_rttm_round_trip_and_format():
    turns = [turn(0.5, 1.75, "SPEAKER_00"), turn(1.5, 3.0, "SPEAKER_01")]
    text = write_rttm(turns, "my meeting")
    assert text.splitlines()[0] == "SPEAKER my_meeting 1 0.500 1.250 <NA> <NA> SPEAKER_00 <NA> <NA>"
    assert read_rttm(text) == turns
    assert read_rttm(text, file_id="other") == []


def test_rttm_reader_ignores_other_lines_and_names_bad_ones():
    assert read_rttm(";; comment\nSPKR-INFO x 1 <NA> <NA> <NA> unknown a <NA>\n") == []
    with pytest.raises(RttmError, match="line 2"):
        read_rttm("SPEAKER f 1 0 1 <NA> <NA> a <NA> <NA>\nSPEAKER f 1 zero 1 <NA> <NA> a\n")
    with pytest.raises(RttmError, match="at least 8"):
        read_rttm("SPEAKER f 1 0 1\n")
