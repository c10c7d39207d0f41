"""Validation of submission fields that needs no server."""

from __future__ import annotations

import pytest

from maie.api.intake.form import DEFAULT_FEATURES, parse_features
from maie.api.intake.uploads import check_filename
from maie.errors import InvalidRequestError, UnprocessableError
from maie.schemas import Feature


class TestFeatures:
    def test_default(self):
        assert parse_features(None) == list(DEFAULT_FEATURES)
        assert parse_features(["", " "]) == list(DEFAULT_FEATURES)

    def test_repeated_and_comma_separated_fields_flatten_in_order(self):
        got = parse_features(["summary, raw_transcript", "summary", "clean_transcript"])
        assert got == [Feature.SUMMARY, Feature.RAW_TRANSCRIPT, Feature.CLEAN_TRANSCRIPT]

    def test_unknown_feature_is_named(self):
        with pytest.raises(UnprocessableError, match="'subtitles'") as err:
            parse_features(["raw_transcript,subtitles"])
        assert "raw_transcript" in err.value.detail  # the known ones are listed


class TestFilename:
    @pytest.mark.parametrize("name", ["meeting.mp3", "Réunion 2026-11-21.m4a", "..mp3", "a b.wav"])
    def test_plain_names_are_kept_as_labels(self, name):
        assert check_filename(name) == name

    @pytest.mark.parametrize(
        "name",
        [
            "../../etc/passwd",
            "/etc/passwd",
            "a/b.wav",
            "C:\\x\\y.wav",
            "..",
            "a\x00.wav",
            "a\nb.wav",
            "x" * 300,
        ],
    )
    def test_unsafe_names_are_refused(self, name):
        with pytest.raises(InvalidRequestError, match="unsafe filename"):
            check_filename(name)

    def test_missing_name(self):
        assert check_filename(None) is None

    @pytest.mark.parametrize("name", ["", "   ", "\u3000"])
    def test_blank_names_are_refused(self, name):
        """A file part with a blank name is a client's mistake, said so (it was kept as no name)."""
        with pytest.raises(InvalidRequestError, match="blank") as refused:
            check_filename(name, field="file")
        assert refused.value.extra == {"field": "file"}
