"""Submission options of the Python client as the multipart form the API reads."""

from __future__ import annotations

from maie.client import SubmitOptions


class TestSubmitOptions:
    def test_keywords_become_form_fields(self):
        options = SubmitOptions.of(
            features=["raw_transcript", "summary"],
            template_id="meeting_notes_v1",
            word_timestamps=False,
            hotwords="MAIE, Litestar",
            beam_size=3,
        )
        assert options.form() == {
            "features": ["raw_transcript", "summary"],
            "template_id": "meeting_notes_v1",
            "word_timestamps": "false",
            "hotwords": "MAIE, Litestar",
            "beam_size": 3,
        }

    def test_unset_options_are_left_to_the_server(self):
        assert SubmitOptions.of().form() == {}
        assert SubmitOptions.of(features=[]).features is None
