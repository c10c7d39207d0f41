"""A batch with summaries: its export carries each task's summary fields (JSON Lines and CSV).

Own Redis, API and worker; the LLM is the OpenAI-compatible test server of
tests/fixtures/llm_server.py (a test double, not a model), reached over HTTP by the worker.
"""

from __future__ import annotations

import csv
import io
import json
import time
import zipfile
from typing import TYPE_CHECKING

import pytest
from jsonschema import Draft202012Validator

from tests.fixtures.llm_server import llm_stack
from tests.fixtures.paths import shared_audio
from tests.fixtures.services import HEADERS_A

if TYPE_CHECKING:
    from collections.abc import Iterator

TEMPLATE = "meeting_notes_v1"


@pytest.fixture(scope="module")
def summary_api(service_env, start_process, tmp_path_factory, start_llm_server) -> Iterator:
    stack = llm_stack(service_env, start_process, tmp_path_factory, start_llm_server())
    yield next(stack)[0]
    next(stack, None)


@pytest.mark.slow
def test_export_has_summary_fields(summary_api, tmp_path):
    archive = tmp_path / "meetings.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(shared_audio("jfk_16k.wav"), "monday/jfk.wav")
        zf.write(shared_audio("lhotse/common_voice_en_651325.mp3"), "tuesday/cv.mp3")
    accepted = summary_api.client.post(
        "/v1/batches",
        headers=HEADERS_A,
        files={"file": ("meetings.zip", archive.read_bytes())},
        data={"features": "raw_transcript,summary", "template_id": TEMPLATE},
    )
    assert accepted.status_code == 202, accepted.text
    batch_id = accepted.json()["batch_id"]
    deadline = time.monotonic() + 120
    while not (status := summary_api.client.get(f"/v1/batches/{batch_id}", headers=HEADERS_A).json())[
        "finished"
    ]:
        assert time.monotonic() < deadline, status
        time.sleep(0.2)
    assert status["counts"] == {"COMPLETE": 2}, status

    schema = summary_api.client.get(f"/v1/templates/{TEMPLATE}", headers=HEADERS_A).json()["schema"]
    fields = list(schema["properties"])
    jsonl = summary_api.client.get(f"/v1/batches/{batch_id}/export", headers=HEADERS_A).text
    rows = [json.loads(line) for line in jsonl.splitlines()]
    assert [r["name"] for r in rows] == ["monday/jfk.wav", "tuesday/cv.mp3"]
    for row in rows:
        Draft202012Validator(schema).validate(row["summary"])

    table = list(
        csv.DictReader(
            io.StringIO(
                summary_api.client.get(
                    f"/v1/batches/{batch_id}/export", headers=HEADERS_A, params={"format": "csv"}
                ).text
            )
        )
    )
    assert [c for c in table[0] if c.startswith("summary.")] == [f"summary.{f}" for f in fields]
    for line, row in zip(table, rows, strict=True):
        for field in fields:
            value = row["summary"][field]
            expected = (
                value
                if isinstance(value, str)
                else json.dumps(value, separators=(",", ":"), ensure_ascii=False)
            )
            assert line[f"summary.{field}"] == expected
