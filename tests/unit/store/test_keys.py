"""Every Redis key is built in ``maie/store/keys.py``; the rest of the package asks it for one."""

from __future__ import annotations

import ast
from pathlib import Path

import maie
from maie.store import keys

PACKAGE = Path(maie.__file__).parent
KEYS_MODULE = PACKAGE / "store" / "keys.py"
#: How every MAIE key begins: the results database's prefix and the broker's namespace.
KEY_STARTS = (f"{keys.PREFIX}:", f"{keys.BROKER_NAMESPACE}:")
#: Names a module would use to build a key of its own.
KEY_NAMES = frozenset({"PREFIX", "BROKER_NAMESPACE"})


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def _spells_key(node: ast.AST, docstrings: set[int]) -> bool:
    if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
        return node.value.startswith(KEY_STARTS)
    return isinstance(node, ast.JoinedStr) and any(
        isinstance(part, ast.FormattedValue)
        and isinstance(part.value, ast.Name)
        and part.value.id in KEY_NAMES
        for part in node.values
    )


def _key_lines(source: str) -> list[int]:
    """Lines that spell a MAIE key: a string that starts like one, or an f-string on the prefix."""
    tree = ast.parse(source)
    docstrings = _docstrings(tree)
    return sorted(node.lineno for node in ast.walk(tree) if _spells_key(node, docstrings))


class TestKeysModule:
    def test_no_module_but_keys_spells_a_key(self):
        found = {
            str(path.relative_to(PACKAGE.parent)): lines
            for path in sorted(PACKAGE.rglob("*.py"))
            if path != KEYS_MODULE and (lines := _key_lines(path.read_text(encoding="utf-8")))
        }
        assert found == {}, "build these keys with a function of maie/store/keys.py"

    def test_the_scan_finds_keys_where_there_are_some(self):
        """Both ways of spelling a key are caught, so an empty result above means something."""
        source = (
            'def f(t):\n    """maie:task:<id> in a docstring is fine."""\n'
            'a = "maie:active"\nb = f"{PREFIX}:task:{t}"\nc = f"maie-dramatiq:{t}"\n'
        )
        assert _key_lines(source) == [3, 4, 5]
        assert _key_lines(KEYS_MODULE.read_text(encoding="utf-8"))

    def test_keys_of_one_worker_share_its_prefix(self):
        assert keys.worker_models_key("w1").startswith(keys.WORKERS_KEY + ":w1")
        assert keys.asr_claim_key("t1") != keys.asr_claim_key("t2")

    def test_idempotency_key_never_holds_the_client_key(self):
        key = keys.idempotency_key("acme", "my secret key")
        assert "my secret key" not in key
        assert key.startswith("maie:idempotency:acme:")
        assert key != keys.idempotency_key("other", "my secret key")
