"""Benchmark: the PostgreSQL task store against the former Redis store, with 100,000 stored tasks.

In one run, on this machine, with synthetic data (Zipf-distributed pseudo-words, 5 s segments):

1. status reads per second (``get(task_id)`` of random finished tasks, as GET /v1/status does),
   alone and with 16 concurrent readers: the API's async store as it reads (its Redis cache of
   finished records, warmed by reading every task once, as a finished task's last write leaves
   it), PostgreSQL alone (the store's read on a cache miss), and the former Redis store; and the
   worker's blocking store. Rounds alternate between them so that load from other processes on
   the machine hits all alike. The ratio cached/Redis is what the issue holds to >= 0.9;
2. the cost of the first page of GET /v1/tasks and of a page deep in the history (milliseconds
   per call, and the index blocks each reads);
3. search latency, p50 and p95 over rare words, common words, word pairs and phrases (target
   p95 < 50 ms);
4. the database size per hour of transcribed audio.

It prints measurements and ratios; it asserts nothing. The data is loaded with COPY, in the rows
the store itself writes (``records._row``, the projection, the search index rows).

    uv run python scripts/bench_store.py                      # 100,000 tasks, 20 segments each
    uv run python scripts/bench_store.py --tasks 20000 --seconds 2
"""

from __future__ import annotations

# ruff: noqa: S311 - synthetic data, not secrets
import argparse
import asyncio
import itertools
import random
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import msgspec  # noqa: E402
import psycopg  # noqa: E402
import redis  # noqa: E402
import redis.asyncio as aioredis  # noqa: E402

from maie.config import DatabaseSettings  # noqa: E402
from maie.schemas import (  # noqa: E402
    Feature,
    Results,
    ResultVersion,
    Segment,
    StageName,
    StageRecord,
    StageState,
    TaskRecord,
    TaskRequest,
    TaskStatus,
    Versions,
)
from maie.store import AsyncTaskStore, TaskFilter, TaskStore, results_url  # noqa: E402
from maie.store.sql import projection, records, search_index  # noqa: E402
from maie.store.sql.listing import encode_cursor, list_tasks  # noqa: E402
from maie.store.sql.operations import jsonb  # noqa: E402
from maie.store.sql.records import get as read_record  # noqa: E402
from tests.fixtures.private_stores import private_stores  # noqa: E402

TENANT = "acme"
SEGMENT_S = 5.0
VOCABULARY = 20_000
SETTINGS = DatabaseSettings(pool_min_size=1, pool_max_size=16)
#: Redis commands per pipeline round trip while loading.
BATCH = 1000


def parse_args() -> argparse.Namespace:
    """Command-line options."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", type=int, default=100_000, help="stored tasks (default: %(default)s)")
    ap.add_argument("--segments", type=int, default=20, help="5 s segments per task (default: %(default)s)")
    ap.add_argument("--words", type=int, default=12, help="words per segment (default: %(default)s)")
    ap.add_argument("--seconds", type=float, default=3.0, help="length of one read measurement")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds per read measurement")
    ap.add_argument("--queries", type=int, default=200, help="search queries timed (default: %(default)s)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument(
        "--folder",
        type=Path,
        help="keep the servers' data here and reuse it in later runs (default: a scratch folder)",
    )
    return ap.parse_args()


class Corpus:
    """Pseudo-words with a Zipf distribution: a few very common, most rare."""

    def __init__(self, rng: random.Random) -> None:
        syllables = ["ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "ze", "pa", "do", "gu", "fe", "hi", "ba"]
        words: set[str] = set()
        while len(words) < VOCABULARY:
            words.add("".join(rng.choice(syllables) for _ in range(rng.randint(2, 4))))
        self.words = sorted(words, key=lambda w: (len(w), w))
        self.cumulative = list(itertools.accumulate(1.0 / (rank + 1) for rank in range(VOCABULARY)))
        self.rng = rng

    def sentence(self, n: int) -> str:
        """``n`` words drawn by frequency."""
        return " ".join(self.rng.choices(self.words, cum_weights=self.cumulative, k=n))


def make_task(
    corpus: Corpus, n: int, args: argparse.Namespace, start: datetime
) -> tuple[TaskRecord, ResultVersion]:
    """A COMPLETE task (record, stages) and its result version 1."""
    task_id = str(uuid.uuid4())
    tenant = TENANT if n % 2 == 0 else f"tenant-{n % 7}"
    submitted = start + timedelta(seconds=n * 3)
    segments = [
        Segment(id=i, start=i * SEGMENT_S, end=i * SEGMENT_S + 4.8, text=corpus.sentence(args.words))
        for i in range(args.segments)
    ]
    summary = {"title": corpus.sentence(5), "key_points": [corpus.sentence(10) for _ in range(3)]}
    template = "meeting_notes_v1" if n % 5 == 0 else None
    features = [Feature.RAW_TRANSCRIPT, *([Feature.SUMMARY] if template else [])]
    stages = [
        StageRecord(
            name=name, status=StageState.DONE, attempts=1, started_at=submitted, finished_at=submitted
        )
        for name in (StageName.PREPROCESS, StageName.TRANSCRIBE, *([StageName.SUMMARIZE] if template else []))
    ]
    record = TaskRecord(
        task_id=task_id,
        tenant=tenant,
        status=TaskStatus.COMPLETE,
        submitted_at=submitted,
        completed_at=submitted + timedelta(seconds=30),
        request=TaskRequest(
            features=features,
            asr_backend="whisper",
            template_id=template,
            filename=f"call-{n}.wav",
            language="en",
        ),
        audio_path=f"/data/audio/{task_id}/raw.wav",
        stages=stages,
        result_version=1,
    )
    result = ResultVersion(
        version=1,
        created_at=record.completed_at or submitted,
        kind="pipeline",
        template_id=template,
        results=Results(
            raw_transcript=" ".join(s.text for s in segments),
            summary=summary if template else None,
            language="en",
            segments=segments,
        ),
        versions=Versions(pipeline_version="bench"),
    )
    return record, result


def load_postgres(url: str, args: argparse.Namespace) -> tuple[list[str], float]:
    """COPY the synthetic tasks in; returns the task ids and the hours of audio stored."""
    rng = random.Random(args.seed)
    corpus = Corpus(rng)
    start = datetime.now(UTC) - timedelta(seconds=args.tasks * 3)
    ids: list[str] = []
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        copies = {
            "tasks": "COPY tasks (task_id, tenant, status, submitted_at, completed_at, batch_id, filename, "
            "template_id, language, result_version, record) FROM STDIN",
            "task_stages": "COPY task_stages (task_id, stage_key, position, name, job_id, status, attempts, "
            "started_at, finished_at, duration_s, error, template_id, result_version) FROM STDIN",
            "result_versions": "COPY result_versions (task_id, version, kind, created_at, template_id, body) "
            "FROM STDIN",
            "search_texts": "COPY search_texts (task_id, source, segment_id, start_s, end_s, speaker, body, "
            "config) FROM STDIN",
        }
        made = [make_task(corpus, n, args, start) for n in range(args.tasks)]
        for table, statement in copies.items():
            with cur.copy(statement) as copy:
                for record, result in made:
                    for row in _rows(table, record, result):
                        copy.write_row(row)
        cur.execute(
            "INSERT INTO search_configs (tenant, config) "
            "SELECT DISTINCT tenant, 'english'::regconfig FROM tasks"
        )
        # What search_index.DOCUMENT makes for one task, for all of them at once.
        cur.execute(
            "INSERT INTO search_documents (task_id, tenant, config, document) "
            "SELECT s.task_id, t.tenant, s.config, "
            "to_tsvector(s.config, string_agg(s.body, E'\\n' ORDER BY s.id)) "
            "FROM search_texts s JOIN tasks t USING (task_id) GROUP BY s.task_id, t.tenant, s.config"
        )
        ids = [record.task_id for record, _ in made]
        conn.commit()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    return ids, args.tasks * args.segments * SEGMENT_S / 3600


def _rows(table: str, record: TaskRecord, result: ResultVersion) -> list[tuple[object, ...]]:
    if table == "tasks":
        return [records._row(record)]  # noqa: SLF001 - the store's own row
    if table == "task_stages":
        return list(projection._stage_rows(record).values())  # noqa: SLF001
    if table == "result_versions":
        return [(record.task_id, 1, result.kind, result.created_at, result.template_id, jsonb(result))]
    rows = search_index._segment_rows(record.task_id, "raw", result.results.segments or [], "english")  # noqa: SLF001
    if result.results.summary:
        text = search_index.clean_text(search_index.summary_text(result.results.summary))
        rows.append((record.task_id, "summary", None, None, None, None, text, "english"))
    return rows


#: Where the Redis store kept a task record (``maie:task:<id>``) before PostgreSQL held them.
def task_key(task_id: str) -> str:
    """The Redis key of a task record in the former Redis store."""
    return f"maie:task:{task_id}"


class RedisRecords:
    """The former Redis store's status read, as it was: one ``GET`` and a msgspec decode.

    The Redis store is gone from MAIE; this is its ``get`` verbatim (without the error mapping),
    the baseline the issue measures PostgreSQL against.
    """

    def __init__(self, url: str) -> None:
        self.client = aioredis.Redis.from_url(url)

    async def get(self, task_id: str) -> TaskRecord:
        """The record of ``task_id``."""
        data = await self.client.get(task_key(task_id))
        return msgspec.json.decode(data, type=TaskRecord)

    async def close(self) -> None:
        """Close the pool."""
        await self.client.aclose()


def load_redis(url: str, sql_url: str, ids: list[str]) -> None:
    """Copy the same task records into a Redis store (records only: status reads need no more)."""
    client = redis.Redis.from_url(url)
    with psycopg.connect(sql_url) as conn:
        rows = conn.execute("SELECT task_id, record::text FROM tasks").fetchall()
    pipe = client.pipeline(transaction=False)
    for n, (task_id, body) in enumerate(rows):
        record = msgspec.json.decode(body, type=TaskRecord)
        pipe.set(task_key(task_id), msgspec.json.encode(record), ex=86400)
        if n % BATCH == BATCH - 1:
            pipe.execute()
    pipe.execute()
    client.close()
    del ids


async def reads_per_second(
    get: Callable[[str], Awaitable[object]], ids: list[str], concurrency: int, seconds: float
) -> float:
    """Calls of ``get`` per second over random ids with ``concurrency`` concurrent callers."""
    rng = random.Random(1)
    count = 0
    stop = time.perf_counter() + seconds

    async def loop() -> None:
        nonlocal count
        while time.perf_counter() < stop:
            await get(rng.choice(ids))
            count += 1

    await asyncio.gather(*(loop() for _ in range(concurrency)))
    return count / seconds


def blocking_reads_per_second(get: Callable[[str], object], ids: list[str], seconds: float) -> float:
    """Calls of a blocking ``get`` per second, one caller."""
    rng = random.Random(1)
    count = 0
    stop = time.perf_counter() + seconds
    while time.perf_counter() < stop:
        get(rng.choice(ids))
        count += 1
    return count / seconds


async def warm_cache(sql: AsyncTaskStore, ids: list[str], concurrency: int = 16) -> float:
    """Read every task once through the store (each finished record is then cached); seconds taken."""
    started = time.perf_counter()
    queue = iter(ids)

    async def loop() -> None:
        for task_id in queue:
            await sql.get(task_id)

    await asyncio.gather(*(loop() for _ in range(concurrency)))
    return time.perf_counter() - started


async def measure_status(
    sql: AsyncTaskStore, red: RedisRecords, ids: list[str], args: argparse.Namespace
) -> dict[str, float]:
    """Status reads: median over alternating rounds, for each store and concurrency."""

    async def uncached(task_id: str) -> object:
        return await sql.database.run(read_record(task_id))

    out: dict[str, float] = {}
    for concurrency in (1, 16):
        rates: dict[str, list[float]] = {"sql": [], "cached": [], "redis": []}
        for _ in range(args.rounds):
            rates["redis"].append(await reads_per_second(red.get, ids, concurrency, args.seconds))
            rates["cached"].append(await reads_per_second(sql.get, ids, concurrency, args.seconds))
            rates["sql"].append(await reads_per_second(uncached, ids, concurrency, args.seconds))
        for name, values in rates.items():
            out[f"{name}_c{concurrency}"] = statistics.median(values)
    return out


async def measure_pages(sql: AsyncTaskStore, url: str, depth: int, repeats: int = 200) -> dict[str, float]:
    """Milliseconds per call of the first page and a page ``depth`` tasks deep, and blocks each reads."""
    with psycopg.connect(url) as conn:
        at, task_id = conn.execute(
            "SELECT submitted_at, task_id FROM tasks WHERE tenant = %s "
            "ORDER BY submitted_at DESC, task_id DESC OFFSET %s LIMIT 1",
            (TENANT, depth),
        ).fetchone()
        cursor = encode_cursor(at, task_id)
        blocks = {}
        for name, page_cursor in (("first", None), ("deep", cursor)):
            statement = next(list_tasks(TENANT, TaskFilter(), limit=20, cursor=page_cursor).make())
            plan = conn.execute(
                psycopg.sql.SQL("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {}").format(statement.sql),
                statement.params,
            ).fetchone()[0]
            top = plan[0]["Plan"]
            blocks[name] = top["Shared Hit Blocks"] + top["Shared Read Blocks"]
    out: dict[str, float] = {}
    for name, page_cursor in (("first", None), ("deep", cursor)):
        started = time.perf_counter()
        for _ in range(repeats):
            await sql.task_page(TENANT, limit=20, cursor=page_cursor)
        out[f"{name}_ms"] = (time.perf_counter() - started) * 1000 / repeats
        out[f"{name}_blocks"] = blocks[name]
    return out


async def measure_search(sql: AsyncTaskStore, url: str, args: argparse.Namespace) -> dict[str, Any]:
    """Latency of searches of four kinds, drawn from the stored texts."""
    rng = random.Random(args.seed + 1)
    corpus = Corpus(random.Random(args.seed))
    with psycopg.connect(url) as conn:
        bodies = [
            b for (b,) in conn.execute("SELECT body FROM search_texts TABLESAMPLE SYSTEM (1) LIMIT 500")
        ]
    kinds = {
        "common word": lambda: rng.choice(corpus.words[:20]),
        "rare word": lambda: rng.choice(corpus.words[5000:]),
        "two words": lambda: f"{rng.choice(corpus.words[100:2000])} {rng.choice(corpus.words[100:2000])}",
        "phrase": lambda: '"{}"'.format(" ".join(rng.choice(bodies).split()[2:4])),
    }
    timings: dict[str, list[float]] = {kind: [] for kind in kinds}
    hits: dict[str, int] = dict.fromkeys(kinds, 0)
    slowest: list[tuple[float, str]] = []
    for n in range(args.queries):
        kind = list(kinds)[n % len(kinds)]
        query = kinds[kind]()
        started = time.perf_counter()
        found, _ = await sql.search(TENANT, query, limit=20)
        took = (time.perf_counter() - started) * 1000
        timings[kind].append(took)
        slowest = sorted([*slowest, (took, query)], reverse=True)[:5]
        hits[kind] += bool(found)
    every = sorted(t for values in timings.values() for t in values)
    return {
        "p50_ms": statistics.median(every),
        "p95_ms": every[int(0.95 * (len(every) - 1))],
        "kinds": {kind: (statistics.median(v), max(v), hits[kind], len(v)) for kind, v in timings.items()},
        "slowest": slowest,
    }


def measure_size(url: str, hours: float) -> dict[str, float]:
    """Database size, and per table, in MiB."""
    with psycopg.connect(url) as conn:
        total = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
        tables = conn.execute(
            "SELECT relname, pg_total_relation_size(oid) FROM pg_class WHERE relkind = 'r' "
            "AND relnamespace = 'public'::regnamespace ORDER BY 2 DESC"
        ).fetchall()
    out = {"total_mib": total / 2**20, "mib_per_audio_hour": total / 2**20 / hours}
    out.update({f"{name}_mib": size / 2**20 for name, size in tables})
    return out


async def run(args: argparse.Namespace, pg_url: str, redis_url: str, ids: list[str], hours: float) -> None:
    """All measurements, printed."""
    sql = AsyncTaskStore.from_urls(pg_url, results_url(redis_url, 2), ttl_s=86400, settings=SETTINGS)
    red = RedisRecords(results_url(redis_url, 1))
    for store in (sql, red):  # warm both: pools filled, statements prepared
        for task_id in ids[:200]:
            await store.get(task_id)
    await sql.client.flushdb()  # the cache starts empty: every task is read from PostgreSQL once
    warmed_s = await warm_cache(sql, ids)
    cached = await sql.client.dbsize()
    print(f"cache warmed in {warmed_s:.0f} s: {cached} keys")
    status = await measure_status(sql, red, ids, args)
    worker = TaskStore.from_urls(pg_url, results_url(redis_url, 2), settings=SETTINGS)
    blocking = blocking_reads_per_second(worker.get, ids, args.seconds)
    worker.close()
    depth = int(len(ids) // 2 * 0.9)
    pages = await measure_pages(sql, pg_url, depth)
    found = await measure_search(sql, pg_url, args)
    size = measure_size(pg_url, hours)
    await sql.close()
    await red.close()

    measured = {"status": status, "blocking": blocking, "pages": pages, "depth": depth, "found": found}
    report(args=args, ids=ids, hours=hours, size=size, **measured)


def report(
    *,
    args: argparse.Namespace,
    ids: list[str],
    hours: float,
    status: dict[str, float],
    blocking: float,
    pages: dict[str, float],
    depth: int,
    found: dict[str, Any],
    size: dict[str, float],
) -> None:
    """Print the measurements and their ratios."""
    print(f"\n== {len(ids)} tasks, {args.segments} segments of {SEGMENT_S:g} s each ({hours:.0f} h of audio)")
    print("status reads per second of finished tasks (median of alternating rounds):")
    print("  cached: the API's store as it reads; PostgreSQL: its read on a miss; Redis: the former store")
    for c in (1, 16):
        sql_rate, cached_rate, redis_rate = status[f"sql_c{c}"], status[f"cached_c{c}"], status[f"redis_c{c}"]
        print(
            f"  {c:>2} reader(s): cached {cached_rate:8.0f}/s  PostgreSQL {sql_rate:8.0f}/s  "
            f"Redis {redis_rate:8.0f}/s  ratio cached/Redis {cached_rate / redis_rate:.2f} (bar >= 0.9), "
            f"PostgreSQL/Redis {sql_rate / redis_rate:.2f}"
        )
    print(f"  blocking store (worker), 1 reader: PostgreSQL {blocking:8.0f}/s")
    print("task list page of 20 (async store):")
    print(
        f"  first page {pages['first_ms']:.2f} ms ({pages['first_blocks']:.0f} blocks), "
        f"page {depth} tasks deep {pages['deep_ms']:.2f} ms ({pages['deep_blocks']:.0f} blocks); "
        f"ratio deep/first {pages['deep_ms'] / pages['first_ms']:.2f}"
    )
    print(f"search, {args.queries} queries of one tenant's {len(ids) // 2} tasks:")
    print(
        f"  p50 {found['p50_ms']:.1f} ms, p95 {found['p95_ms']:.1f} ms "
        f"(target < 50 ms: ratio {found['p95_ms'] / 50:.2f})"
    )
    for kind, (median, worst, with_hits, n) in found["kinds"].items():
        print(f"    {kind:<12} median {median:6.1f} ms, max {worst:6.1f} ms, {with_hits}/{n} with hits")
    print("    slowest: " + ", ".join(f"{query} ({took:.0f} ms)" for took, query in found["slowest"]))
    print("database size:")
    print(f"  {size['total_mib']:.0f} MiB in all, {size['mib_per_audio_hour']:.2f} MiB per hour of audio")
    for name, value in size.items():
        if name.endswith("_mib") and name != "total_mib":
            print(f"    {name[:-4]:<20} {value:8.1f} MiB")


def main() -> None:
    """Start both servers on a scratch folder, load, measure, clean up."""
    args = parse_args()
    folder = args.folder or Path(tempfile.mkdtemp(prefix="maie-bench-store-"))
    try:
        with private_stores(folder) as stores:
            pg_url, redis_url = stores.database_url, stores.redis_url
            with psycopg.connect(pg_url) as conn:
                ids = [task_id for (task_id,) in conn.execute("SELECT task_id FROM tasks")]
                raw = "SELECT count(*) FROM search_texts WHERE source = 'raw'"
                segments = conn.execute(raw).fetchone()[0]
            if ids:
                hours = segments * SEGMENT_S / 3600
                print(f"reusing {len(ids)} tasks in {folder}")
            else:
                started = time.perf_counter()
                ids, hours = load_postgres(pg_url, args)
                load_redis(results_url(redis_url, 1), pg_url, ids)
                print(f"loaded {len(ids)} tasks in {time.perf_counter() - started:.0f} s")
            asyncio.run(run(args, pg_url, redis_url, ids, hours))
    finally:
        if args.folder is None:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
