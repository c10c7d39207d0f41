"""The web app's server side holds no data of its own: pages get everything from /v1 in the browser.

So its modules import neither the stores, the worker, the client nor the API (which imports it).
"""

from __future__ import annotations

import ast

from maie.web import STATIC_DIR

FORBIDDEN = ("maie.store", "maie.worker", "maie.client", "maie.api", "redis", "dramatiq")


def test_web_modules_import_no_store_worker_client_or_api():
    for path in sorted(STATIC_DIR.parent.glob("*.py")):
        tree = ast.parse(path.read_text())
        names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
        names += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
        assert not [n for n in names if n.startswith(FORBIDDEN)], path.name
