"""Archive unpacking refuses bombs, escapes, links and devices, and writes only inside its folder."""

from __future__ import annotations

import os
import tarfile
import zipfile

import pytest

from maie.archives import ArchiveLimits, _zip_entry_count, archive_kind, member_label, unpack
from maie.errors import ArchiveLimitError
from tests.fixtures.archives import tar_with, zip_many, zip_symlink, zip_with

MiB = 1024 * 1024
LIMITS = ArchiveLimits(max_members=1000, max_total_bytes=20 * MiB, max_member_bytes=8 * MiB, max_ratio=100)


@pytest.fixture
def dest(tmp_path):
    folder = tmp_path / "batch"
    folder.mkdir()
    return folder


def _outside(tmp_path, dest):
    """Every file under tmp_path that is not inside dest or one of the test's own archives."""
    found = []
    for root, _, files in os.walk(tmp_path):
        for name in files:
            path = os.path.join(root, name)  # noqa: PTH118 - os.walk yields strings
            if not path.startswith(str(dest)) and not name.startswith("input"):
                found.append(path)
    return found


class TestMembers:
    """Regular files come out with their names as labels; everything else is skipped with a reason."""

    def test_nested_folders_and_mixed_members(self, tmp_path, dest):
        archive = zip_with(
            tmp_path / "input.zip",
            [
                ("meetings/", b""),
                ("meetings/2024/jan.wav", b"RIFF jan"),
                ("meetings/2024/feb/standup.mp3", b"ID3 feb"),
                ("./top.flac", b"fLaC top"),
                ("notes.txt", b"minutes"),
            ],
        )
        unpacked, skipped = unpack(archive, dest, LIMITS)
        assert [m.name for m in unpacked] == [
            "meetings/2024/jan.wav",
            "meetings/2024/feb/standup.mp3",
            "top.flac",
            "notes.txt",
        ], "content, not name, decides what is audio: that is for the probe"
        assert [m.path.read_bytes() for m in unpacked] == [b"RIFF jan", b"ID3 feb", b"fLaC top", b"minutes"]
        assert all(m.path.parent == dest for m in unpacked), "names never become paths"
        assert skipped == []

    def test_escaping_names_are_skipped_and_nothing_lands_outside(self, tmp_path, dest):
        archive = zip_with(
            tmp_path / "input.zip",
            [
                ("../escape.wav", b"x"),
                ("a/../../escape2.wav", b"x"),
                ("/tmp/absolute.wav", b"x"),  # noqa: S108 - the hostile name under test
                ("C:\\windows\\evil.wav", b"x"),
                ("ok.wav", b"fine"),
            ],
        )
        unpacked, skipped = unpack(archive, dest, LIMITS)
        assert [m.name for m in unpacked] == ["ok.wav"]
        reasons = {s.name: s.reason for s in skipped}
        assert "('..')" in reasons["../escape.wav"]
        assert "('..')" in reasons["a/../../escape2.wav"]
        assert "absolute" in reasons["/tmp/absolute.wav"]  # noqa: S108 - the hostile name under test
        assert "absolute" in reasons["C:/windows/evil.wav"]
        assert _outside(tmp_path, dest) == []
        assert not (tmp_path / "escape.wav").exists()

    def test_zip_symlink_is_skipped(self, tmp_path, dest):
        archive = zip_symlink(tmp_path / "input.zip", "link.wav", "/etc/passwd", extra=[("real.wav", b"ok")])
        unpacked, skipped = unpack(archive, dest, LIMITS)
        assert [m.name for m in unpacked] == ["real.wav"]
        assert skipped[0].name == "link.wav"
        assert "symbolic link" in skipped[0].reason
        assert _outside(tmp_path, dest) == []

    def test_tar_links_devices_and_escapes(self, tmp_path, dest):
        archive = tar_with(
            tmp_path / "input.tar.gz",
            [("talks/one.wav", b"one"), ("../up.wav", b"up"), ("/abs.wav", b"abs")],
            links=[
                ("sym.wav", tarfile.SYMTYPE, "/etc/passwd"),
                ("inner-sym.wav", tarfile.SYMTYPE, "talks/one.wav"),
                ("hard.wav", tarfile.LNKTYPE, "talks/one.wav"),
                ("null", tarfile.CHRTYPE, ""),
                ("fifo", tarfile.FIFOTYPE, ""),
            ],
        )
        unpacked, skipped = unpack(archive, dest, LIMITS)
        assert [m.name for m in unpacked] == ["talks/one.wav"]
        reasons = {s.name: s.reason for s in skipped}
        assert set(reasons) == {
            "../up.wav",
            "/abs.wav",
            "sym.wav",
            "inner-sym.wav",
            "hard.wav",
            "null",
            "fifo",
        }
        assert "absolute" in reasons["/abs.wav"]
        assert "refused" in reasons["sym.wav"]
        assert "link refused" in reasons["inner-sym.wav"], "even a link that stays inside"
        assert "special file" in reasons["null"], "tarfile's data filter refuses devices"
        assert _outside(tmp_path, dest) == []

    def test_too_large_member_is_skipped(self, tmp_path, dest):
        archive = zip_with(tmp_path / "input.zip", [("big.wav", os.urandom(9 * MiB)), ("small.wav", b"s")])
        unpacked, skipped = unpack(archive, dest, LIMITS)
        assert [m.name for m in unpacked] == ["small.wav"]
        assert "larger than one upload" in skipped[0].reason

    def test_damaged_member_is_skipped(self, tmp_path, dest):
        archive = zip_with(
            tmp_path / "input.zip", [("a.wav", b"A" * 5000), ("b.wav", b"B")], compression=zipfile.ZIP_STORED
        )
        data = bytearray(archive.read_bytes())
        at = data.find(b"A" * 100)
        data[at : at + 10] = b"Z" * 10  # the CRC no longer matches
        archive.write_bytes(bytes(data))
        unpacked, skipped = unpack(archive, dest, LIMITS)
        assert [m.name for m in unpacked] == ["b.wav"]
        assert "damaged" in skipped[0].reason


class TestLimits:
    """Bombs and floods are refused whole, before anything is written."""

    def test_zip_bomb_member_ratio(self, tmp_path, dest):
        archive = zip_with(tmp_path / "input.zip", [("bomb.wav", bytes(6 * MiB))])
        assert archive.stat().st_size < 50_000
        with pytest.raises(ArchiveLimitError, match="zip bomb"):
            unpack(archive, dest, LIMITS)
        assert list(dest.iterdir()) == []

    def test_tar_gz_bomb_overall_ratio(self, tmp_path, dest):
        archive = tar_with(tmp_path / "input.tar.gz", [(f"z{n}.wav", bytes(2 * MiB)) for n in range(3)])
        with pytest.raises(ArchiveLimitError, match="MAIE_BATCH_MAX_RATIO"):
            unpack(archive, dest, LIMITS)
        assert list(dest.iterdir()) == []

    def test_total_size(self, tmp_path, dest):
        members = [(f"r{n}.wav", os.urandom(6 * MiB)) for n in range(4)]
        archive = zip_with(tmp_path / "input.zip", members, compression=zipfile.ZIP_STORED)
        with pytest.raises(ArchiveLimitError, match="MAIE_BATCH_MAX_UNPACKED_MB"):
            unpack(archive, dest, LIMITS)
        assert list(dest.iterdir()) == []

    @pytest.mark.parametrize("kind", ["zip", "tar"])
    def test_ten_thousand_members(self, tmp_path, dest, kind):
        path = tmp_path / f"input.{kind}"
        if kind == "zip":
            zip_many(path, 10_000)
        else:
            tar_with(path, [(f"f{n:05d}.wav", b"") for n in range(10_000)], mode="w")
        with pytest.raises(ArchiveLimitError, match="MAIE_BATCH_MAX_MEMBERS=1000"):
            unpack(path, dest, LIMITS)
        assert list(dest.iterdir()) == []

    def test_zip_count_is_read_before_the_directory_is_parsed(self, tmp_path, dest, monkeypatch):
        """The end-of-central-directory count refuses a flood without building 10,000 ZipInfo."""
        flood = zip_many(tmp_path / "input.zip", 10_000)
        assert _zip_entry_count(flood) == 10_000

        def parse(*args, **kwargs):
            raise AssertionError("zipfile parsed the central directory")

        monkeypatch.setattr(zipfile, "ZipFile", parse)
        with pytest.raises(ArchiveLimitError, match="10000 entries"):
            unpack(flood, dest, LIMITS)


class TestKind:
    """Archives are recognised by content."""

    def test_kinds(self, tmp_path):
        assert archive_kind(zip_with(tmp_path / "x.bin", [("a", b"a")])) == "zip"
        assert archive_kind(tar_with(tmp_path / "x.dat", [("a", b"a")], mode="w:bz2")) == "tar"
        plain = tmp_path / "x.zip"
        plain.write_bytes(b"RIFF....WAVEfmt ")
        assert archive_kind(plain) is None

    def test_labels(self):
        assert member_label("./a\\b\x00c.wav") == "a/bc.wav"
        assert member_label("x" * 400) == "x" * 255
