"""The benchmarks under scripts/ still run: each starts real services on stores of its own.

Not a measurement (the figures are printed, not judged): a bench that no longer starts its
services, as several did when PostgreSQL became the store, fails here instead of going unnoticed.
The two quickest stand for the rest; every bench starts its stores through the same helper
(``tests/fixtures/private_stores.py``).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def _bench(script: str, *args: str, timeout: float = 300) -> str:
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def test_the_hostile_form_bench_runs():
    out = _bench("bench_hostile_form.py", "--field-mb", "1", "--idle-s", "0.5")
    assert "hostile request: 413" in out, out


def test_the_openai_bench_runs():
    out = _bench("bench_openai.py", "--backends", "pocketsphinx", "--runs", "1")
    assert "pocketsphinx: ratio openai / baseline (medians):" in out, out
