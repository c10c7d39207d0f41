"""The suite's own machinery for running in parallel: shared builds, worker groups, unique ids."""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.fixtures.parallel import duplicate_ids
from tests.fixtures.run_cache import built_once


def _build_logged(folder: Path) -> None:
    log = folder.parent / "builds.log"
    with log.open("a") as fh:
        fh.write(f"{folder.name}\n")
    (folder / "model.bin").write_bytes(b"weights")


def _ask(root: str) -> str:
    return str(built_once(Path(root), "tiny", _build_logged))


class TestBuiltOnce:
    """A model asked for by several worker processes is built by one of them."""

    def test_processes_share_one_build(self, tmp_path):
        with ProcessPoolExecutor(max_workers=3) as pool:
            folders = set(pool.map(_ask, [str(tmp_path)] * 6))
        assert folders == {str(tmp_path / "tiny")}
        assert (tmp_path / "builds.log").read_text().splitlines() == ["tiny.partial"]
        assert (tmp_path / "tiny" / "model.bin").read_bytes() == b"weights"

    def test_a_failed_build_leaves_nothing_and_is_tried_again(self, tmp_path):
        def broken(folder: Path) -> None:
            (folder / "half.bin").write_bytes(b"x")
            raise OSError("disk full")

        with pytest.raises(OSError, match="disk full"):
            built_once(tmp_path, "tiny", broken)
        assert not (tmp_path / "tiny").exists()

        assert built_once(tmp_path, "tiny", _build_logged) == tmp_path / "tiny"
        assert sorted(p.name for p in (tmp_path / "tiny").iterdir()) == ["model.bin"]


class TestGroups:
    """Tests sharing a module or class fixture, or a device, are kept on one xdist worker."""

    def test_groups_follow_shared_fixtures(self, pytester):
        pytester.makeconftest(
            "pytest_plugins = ['tests.fixtures.parallel']\n"
            "def pytest_configure(config):\n"
            "    config.addinivalue_line('markers', 'gpu: needs a device')\n"
        )
        pytester.makepyfile(
            test_stack="""
            import pytest

            @pytest.fixture(scope="module")
            def stack():
                return "services"

            def test_one(stack):
                pass

            def test_two(stack):
                pass

            def test_alone(tmp_path):
                pass

            @pytest.mark.xdist_group("named")
            def test_named(stack):
                pass

            @pytest.mark.gpu
            def test_on_the_device(stack):
                pass

            class TestModel:
                @pytest.fixture(scope="class")
                def model(self):
                    return "weights"

                def test_loaded(self, model):
                    pass
            """
        )
        items, _ = pytester.inline_genitems("-p", "no:asyncio")
        groups = {
            item.name: (mark.args[0] if (mark := item.get_closest_marker("xdist_group")) else None)
            for item in items
        }
        assert groups == {
            "test_one": "test_stack.py",
            "test_two": "test_stack.py",
            "test_alone": None,
            "test_named": "named",
            "test_on_the_device": "gpu",
            "test_loaded": "test_stack.py::TestModel",
        }


class TestUniqueIds:
    """Two tests with one node id would run as one under xdist."""

    def test_duplicates_are_named(self):
        """Items are stand-ins (test doubles) carrying only a node id."""
        items = [SimpleNamespace(nodeid=n) for n in ("a.py::t[1]", "a.py::t", "a.py::t", "b.py::u")]
        assert duplicate_ids(items) == ["a.py::t"]
