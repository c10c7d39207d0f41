"""The layering of docs/architecture.md, as the import-linter contracts of pyproject.toml.

``uv run lint-imports`` checks them too; running them here makes ``uv run pytest`` (and so CI)
fail when a change breaks one, with import-linter's report of the offending import chain.
"""

from __future__ import annotations

from pathlib import Path

from importlinter.api import read_configuration
from importlinter.cli import EXIT_STATUS_SUCCESS, lint_imports

PYPROJECT = Path(__file__).parents[2] / "pyproject.toml"


def _contracts() -> dict[str, dict[str, object]]:
    options = read_configuration(str(PYPROJECT))["contracts_options"]
    return {
        str(c["type"]) + ":" + ",".join(sorted(c.get("source_modules") or c["modules"])): c for c in options
    }


class TestContracts:
    def test_every_contract_is_kept(self, capsys):
        status = lint_imports(config_filename=str(PYPROJECT), no_cache=True, no_logo=True)
        report = capsys.readouterr().out
        assert status == EXIT_STATUS_SUCCESS, report
        assert "3 kept, 0 broken" in report

    def test_the_contracts_are_the_documented_layering(self):
        contracts = _contracts()
        pipeline = contracts["forbidden:maie.pipeline"]
        assert set(pipeline["forbidden_modules"]) == {
            "litestar",
            "dramatiq",
            "redis",
            "maie.api",
            "maie.worker",
            "maie.store",
        }
        assert "independence:maie.api,maie.client,maie.worker" in contracts
        assert "independence:maie.api.routes.*" in contracts
