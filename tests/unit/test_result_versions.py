"""Result versions are immutable; later versions (re-summaries) are added as n + 1."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime

import msgspec

from maie.schemas import Results, ResultVersion, Versions
from maie.store import AsyncTaskStore, result_key, results_url
from tests.fixtures.records import make_record
from tests.fixtures.store import STORE_DB


def _version(kind, template_id=None):
    def build(n):
        return ResultVersion(
            version=n,
            created_at=datetime.now(UTC),
            kind=kind,
            template_id=template_id,
            results=Results(raw_transcript=f"text of {n}"),
            versions=Versions(pipeline_version="test"),
        )

    return build


class TestAddResult:
    """add_result is where a re-summarization stores its version."""

    def test_adds_next_version_and_keeps_earlier_bytes(self, store):
        record = make_record(str(uuid.uuid4()))
        store.client.set(f"maie:task:{record.task_id}", msgspec.json.encode(record))
        first = store.add_result(record.task_id, _version("pipeline"))
        before = store.client.get(result_key(record.task_id, 1))
        second = store.add_result(record.task_id, _version("resummary", "meeting_notes_v1"))
        assert (first.version, second.version) == (1, 2)
        assert store.client.get(result_key(record.task_id, 1)) == before, "version 1 is byte-for-byte kept"
        assert store.get(record.task_id).result_version == 2
        assert store.get_result(record.task_id, 2).kind == "resummary"

    def test_racing_writers_get_consecutive_versions(self, store):
        record = make_record(str(uuid.uuid4()))
        store.client.set(f"maie:task:{record.task_id}", msgspec.json.encode(record))
        threads = [
            threading.Thread(target=store.add_result, args=(record.task_id, _version("resummary")))
            for _ in range(6)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert store.get(record.task_id).result_version == 6
        assert sorted(
            int(k.rsplit(b":", 1)[1]) for k in store.client.keys(f"maie:task:{record.task_id}:result:*")
        ) == [1, 2, 3, 4, 5, 6]

    async def test_listing_reads_only_the_headers(self, store, redis_server):
        record = make_record(str(uuid.uuid4()))
        store.client.set(f"maie:task:{record.task_id}", msgspec.json.encode(record))
        store.add_result(record.task_id, _version("pipeline"))
        store.add_result(record.task_id, _version("resummary", "meeting_notes_v1"))
        api_store = AsyncTaskStore.from_url(results_url(redis_server.url, STORE_DB), ttl_s=600)
        listed = await api_store.list_results(record.task_id, 2)
        await api_store.close()
        assert [(v.version, v.kind, v.template_id) for v in listed] == [
            (1, "pipeline", None),
            (2, "resummary", "meeting_notes_v1"),
        ]
