"""What clients see of a model's location: names and relative paths, never the server's folders."""

from __future__ import annotations

from pathlib import Path

import pytest

from maie.pipeline.model_names import public_location


class TestPublicLocation:
    @pytest.mark.parametrize("name", ["small", "Systran/faster-whisper-small", "models/tiny", "en-us"])
    def test_names_and_relative_paths_are_kept(self, name):
        assert public_location(name) == name

    def test_an_absolute_folder_becomes_its_name(self, tmp_path):
        assert public_location(tmp_path / "whisper-tiny") == "whisper-tiny"
        assert public_location("/srv/models/cmudict-en-us.dict") == "cmudict-en-us.dict"

    def test_a_hub_cache_folder_keeps_its_path_in_the_cache(self):
        folder = "/var/lib/maie/models/models--Systran--faster-whisper-small/snapshots/abc123"
        assert public_location(folder) == "models--Systran--faster-whisper-small/snapshots/abc123"

    @pytest.mark.parametrize("path", [r"C:\\models\\tiny", "~/models/tiny"])
    def test_other_roots_are_absolute_too(self, path):
        assert public_location(path) == "tiny"

    def test_nothing_of_the_parent_folders_is_left(self, tmp_path):
        shown = public_location(Path(tmp_path) / "a" / "model")
        assert str(tmp_path) not in shown
        assert "/" not in shown
