"""Read the tensors of a PyTorch checkpoint without torch: NumPy arrays by name.

A ``.pt`` file is pickles plus raw tensor storages. Two layouts exist: the zip archive that
``torch.save`` writes since PyTorch 1.6 (``<name>/data.pkl`` and ``<name>/data/<key>``), and the
older "legacy" stream (magic number, protocol, system info, the pickled object, the storage keys,
then each storage as an int64 element count followed by its bytes), which is what the
``resemblyzer`` wheel ships. Both are read here with an unpickler that builds only tensors, plain
containers and ``OrderedDict``: anything else in the pickle is refused, so a hostile checkpoint
cannot run code (the reason ``torch.load`` grew ``weights_only``).
"""

from __future__ import annotations

import collections
import pickle
import zipfile
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["CheckpointError", "load_tensors"]

#: First pickle of a legacy checkpoint.
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
#: Storage classes of the pickle, by their dtype.
_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class CheckpointError(ValueError):
    """The file is not a checkpoint this reader understands, or holds something it refuses."""


@dataclass(slots=True)
class _Storage:
    """A storage named in the pickle; ``data`` is filled once its bytes are read."""

    dtype: Any
    numel: int
    data: np.ndarray | None = None


@dataclass(frozen=True, slots=True)
class _StorageType:
    dtype: Any


@dataclass(frozen=True, slots=True)
class _TensorRef:
    storage: _Storage
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]

    def array(self) -> np.ndarray:
        if self.storage.data is None:
            msg = "a tensor's storage was never read"
            raise CheckpointError(msg)
        item = self.storage.data.itemsize
        flat = self.storage.data[self.offset :]
        strides = tuple(s * item for s in self.stride)
        return np.lib.stride_tricks.as_strided(flat, self.shape, strides).copy()


def _rebuild_tensor(
    storage: _Storage, offset: int, shape: tuple[int, ...], stride: tuple[int, ...], *_: object
) -> _TensorRef:
    return _TensorRef(storage, offset, tuple(shape), tuple(stride))


class _Unpickler(pickle.Unpickler):
    """Builds tensor references and plain containers only."""

    def __init__(self, file: IO[bytes], storages: dict[str, _Storage]) -> None:
        super().__init__(file)
        self.storages = storages

    def find_class(self, module: str, name: str) -> Any:  # noqa: ANN401 - pickle protocol
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch._utils" and name in {"_rebuild_tensor_v2", "_rebuild_tensor"}:
            return _rebuild_tensor
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(_STORAGE_DTYPES[name])
        msg = f"the checkpoint asks for {module}.{name}, which a weights file never needs; refused"
        raise CheckpointError(msg)

    def persistent_load(self, pid: Any) -> Any:  # noqa: ANN401 - pickle protocol
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
            msg = f"unexpected persistent id {pid!r}"
            raise CheckpointError(msg)
        storage_type, key, _location, numel = pid[1], str(pid[2]), pid[3], int(pid[4])
        if not isinstance(storage_type, _StorageType):
            msg = f"unknown storage type {storage_type!r}"
            raise CheckpointError(msg)
        return self.storages.setdefault(key, _Storage(storage_type.dtype, numel))


def _materialise(obj: Any) -> Any:  # noqa: ANN401 - any pickled structure
    if isinstance(obj, _TensorRef):
        return obj.array()
    if isinstance(obj, dict):
        return {k: _materialise(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(_materialise(v) for v in obj)
    return obj


def _read_legacy(file: IO[bytes]) -> Any:  # noqa: ANN401 - any pickled structure
    if pickle.load(file) != _LEGACY_MAGIC:  # noqa: S301 - plain ints, before any untrusted class
        msg = "not a PyTorch checkpoint (bad magic number)"
        raise CheckpointError(msg)
    pickle.load(file)  # noqa: S301 - protocol version (an int)
    pickle.load(file)  # noqa: S301 - system info (a dict of ints and bools)
    storages: dict[str, _Storage] = {}
    result = _Unpickler(file, storages).load()
    keys = pickle.load(file)  # noqa: S301 - a list of strings
    for key in keys:
        storage = storages[str(key)]
        numel = int.from_bytes(file.read(8), "little", signed=True)
        raw = file.read(numel * np.dtype(storage.dtype).itemsize)
        if numel != storage.numel or len(raw) != numel * np.dtype(storage.dtype).itemsize:
            msg = f"storage {key} is truncated or has the wrong size"
            raise CheckpointError(msg)
        storage.data = np.frombuffer(raw, dtype=storage.dtype)
    return result


def _read_zip(path: Path) -> Any:  # noqa: ANN401 - any pickled structure
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        pkl = next((n for n in names if n.endswith("/data.pkl")), None)
        if pkl is None:
            msg = f"{path} is a zip without data.pkl: not a PyTorch checkpoint"
            raise CheckpointError(msg)
        prefix = pkl.removesuffix("data.pkl")
        storages: dict[str, _Storage] = {}
        with archive.open(pkl) as file:
            result = _Unpickler(file, storages).load()
        for key, storage in storages.items():
            raw = archive.read(f"{prefix}data/{key}")
            storage.data = np.frombuffer(raw, dtype=storage.dtype)
    return result


def load_tensors(path: Path) -> Any:  # noqa: ANN401 - the checkpoint's own structure
    """The object saved in ``path``, with every tensor as a NumPy array.

    Raises:
        CheckpointError: if the file is not a PyTorch checkpoint or asks for code to run.
        OSError: if it cannot be read.
    """
    if zipfile.is_zipfile(path):
        return _materialise(_read_zip(path))
    with path.open("rb") as file:
        try:
            return _materialise(_read_legacy(file))
        except (pickle.UnpicklingError, EOFError, KeyError) as exc:
            msg = f"{path} is not a readable PyTorch checkpoint ({exc})"
            raise CheckpointError(msg) from exc
