"""Checkpoint hashes: correct, computed once, recomputed when the weights change."""

from __future__ import annotations

import hashlib
import json
import os

import pytest

from maie.pipeline.asr import checkpoint
from maie.pipeline.asr.checkpoint import CACHE_FILE_NAME, checkpoint_hash, clear_memory_cache


@pytest.fixture(autouse=True)
def fresh_memory():
    """Each test starts and ends with an empty in-process cache."""
    clear_memory_cache()
    yield
    clear_memory_cache()


@pytest.fixture
def hash_calls(monkeypatch):
    """Count how many times a file is actually read and hashed."""
    calls: list[str] = []
    real = checkpoint._hash_file

    def counting(path):
        calls.append(str(path))
        return real(path)

    monkeypatch.setattr(checkpoint, "_hash_file", counting)
    return calls


@pytest.fixture
def model_dir(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "model.bin").write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    return folder


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class TestCheckpointHash:
    """The hash itself."""

    def test_is_sha256_of_model_bin(self, model_dir, tmp_path):
        """One weight file: the hash is that file's plain SHA-256 (checkable with sha256sum)."""
        assert checkpoint_hash(model_dir, cache_dir=tmp_path / "cache") == sha256(model_dir / "model.bin")

    def test_several_weight_files_combine(self, model_dir, monkeypatch):
        """Several weight files: the hash covers each of them, by name."""
        (model_dir / "extra.bin").write_bytes(b"more weights")
        monkeypatch.setattr(checkpoint, "WEIGHT_FILE_NAMES", ("model.bin", "extra.bin"))

        lines = f"model.bin {sha256(model_dir / 'model.bin')}\nextra.bin {sha256(model_dir / 'extra.bin')}\n"
        assert checkpoint_hash(model_dir) == hashlib.sha256(lines.encode()).hexdigest()

    def test_folder_without_weights(self, tmp_path):
        """A folder with no weight file is an error, not an empty hash."""
        with pytest.raises(FileNotFoundError, match=r"model\.bin"):
            checkpoint_hash(tmp_path)


class TestCaching:
    """Hashes are reused while path, size and mtime are unchanged."""

    def test_second_call_does_not_reread(self, model_dir, hash_calls):
        """Within a process the file is hashed once."""
        first = checkpoint_hash(model_dir)
        second = checkpoint_hash(model_dir)

        assert first == second
        assert len(hash_calls) == 1

    def test_disk_cache_survives_process_memory(self, model_dir, tmp_path, hash_calls):
        """A fresh process (empty memory) reuses the disk cache without reading the weights."""
        cache_dir = tmp_path / "cache"
        first = checkpoint_hash(model_dir, cache_dir=cache_dir)
        clear_memory_cache()
        second = checkpoint_hash(model_dir, cache_dir=cache_dir)

        assert first == second
        assert len(hash_calls) == 1
        entries = json.loads((cache_dir / CACHE_FILE_NAME).read_text())
        entry = entries[str((model_dir / "model.bin").resolve())]
        stat = (model_dir / "model.bin").stat()
        assert entry == {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": first}

    def test_cache_is_keyed_on_size_and_mtime(self, model_dir, tmp_path):
        """Same size and mtime: the cached hash is trusted (the file is not re-read)."""
        weights = model_dir / "model.bin"
        first = checkpoint_hash(model_dir, cache_dir=tmp_path / "cache")
        stat = weights.stat()
        weights.write_bytes(os.urandom(stat.st_size))
        os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        clear_memory_cache()

        assert checkpoint_hash(model_dir, cache_dir=tmp_path / "cache") == first

    def test_changed_file_is_rehashed(self, model_dir, tmp_path, hash_calls):
        """New weights (new mtime) get a new hash, in memory and on disk."""
        cache_dir = tmp_path / "cache"
        weights = model_dir / "model.bin"
        first = checkpoint_hash(model_dir, cache_dir=cache_dir)
        stat = weights.stat()
        weights.write_bytes(b"other weights")
        os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))

        second = checkpoint_hash(model_dir, cache_dir=cache_dir)

        assert second != first
        assert second == sha256(weights)
        assert len(hash_calls) == 2
        entries = json.loads((cache_dir / CACHE_FILE_NAME).read_text())
        assert next(iter(entries.values()))["sha256"] == second
        assert len(entries) == 1, "one entry per file: replaced weights do not pile up"

    def test_corrupt_cache_is_tolerated(self, model_dir, tmp_path):
        """A truncated cache file costs a re-hash and is rewritten whole."""
        cache_dir = tmp_path / "cache"
        cache_dir.mkdir()
        (cache_dir / CACHE_FILE_NAME).write_text('{"half": ')

        digest = checkpoint_hash(model_dir, cache_dir=cache_dir)

        assert digest == sha256(model_dir / "model.bin")
        assert json.loads((cache_dir / CACHE_FILE_NAME).read_text())
        assert sorted(p.name for p in cache_dir.iterdir()) == [CACHE_FILE_NAME], "no temp file left"

    def test_forged_cache_entry_is_ignored(self, model_dir, tmp_path):
        """An entry whose digest is not 64 hex characters is not trusted."""
        cache_dir = tmp_path / "cache"
        cache_dir.mkdir()
        stat = (model_dir / "model.bin").stat()
        key = str((model_dir / "model.bin").resolve())
        forged = {key: {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": "nope"}}
        (cache_dir / CACHE_FILE_NAME).write_text(json.dumps(forged))

        assert checkpoint_hash(model_dir, cache_dir=cache_dir) == sha256(model_dir / "model.bin")

    def test_unwritable_cache_dir(self, model_dir, tmp_path):
        """A cache location that cannot be created does not fail the hash."""
        blocker = tmp_path / "blocker"
        blocker.write_text("a file where the cache folder should be")

        assert checkpoint_hash(model_dir, cache_dir=blocker / "cache") == sha256(model_dir / "model.bin")
