"""Full-text search of a tenant's tasks (transcripts and summaries), newest first, cursor-paged.

The query is parsed with ``websearch_to_tsquery`` (words, ``"a phrase"``, ``or``, ``-word``) once
per text search configuration the tenant's texts use, and each parse is matched only against the
texts indexed with its configuration (see :mod:`maie.store.sql.search_index`). A search is three
statements: the tenant's configurations; one page of matching tasks, filtered and keyset-paged
exactly like :func:`maie.store.sql.listing.list_tasks` (so a deep page costs what the first
does); and the matching segments of those tasks with ``ts_headline`` snippets.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from psycopg import sql

from maie.errors import InvalidRequestError
from maie.schemas import SearchHit, SearchSegment, TaskStatus
from maie.store.sql.listing import TaskFilter, check_limit, encode_cursor, filter_clause
from maie.store.sql.operations import Statement, Work

if TYPE_CHECKING:
    from maie.store.sql.operations import Op

__all__ = ["MAX_QUERY_CHARS", "SEGMENTS_PER_HIT", "search"]

#: Longest query accepted.
MAX_QUERY_CHARS = 500
#: Matching texts returned per task (``matches`` counts them all).
SEGMENTS_PER_HIT = 5
#: ts_headline markers: control characters the indexed texts never hold (they are stripped). The
#: texts are stored HTML-escaped, so a snippet is safe HTML once the markers become ``<mark>`` tags.
_START, _STOP = "\x02", "\x03"
#: A segment is shown whole (up to 35 words); a summary as up to two fragments around its matches.
_SEGMENT_HEADLINE = f"StartSel={_START}, StopSel={_STOP}, MaxWords=35, MinWords=15"
_SUMMARY_HEADLINE = f'{_SEGMENT_HEADLINE}, MaxFragments=2, FragmentDelimiter=" … "'
_CONFIGS = "SELECT config::text FROM search_configs WHERE tenant = %s ORDER BY 1"
_SEGMENTS = """
WITH q AS (
    SELECT c.config, websearch_to_tsquery(c.config, %(q)s) AS query
    FROM unnest(%(configs)s::regconfig[]) AS c(config)
), hits AS (
    -- A segment that matched in both transcripts counts once, as its clean text.
    SELECT DISTINCT ON (s.task_id, s.source = 'summary', s.segment_id)
           s.task_id, s.source, s.segment_id, s.start_s, s.end_s, s.speaker, s.body, s.config, q.query
    FROM search_texts s JOIN q ON s.config = q.config
    WHERE s.task_id = ANY(%(ids)s) AND s.document @@ q.query
    ORDER BY s.task_id, s.source = 'summary', s.segment_id, s.source
), ranked AS (
    SELECT hits.*,
           row_number() OVER (PARTITION BY task_id ORDER BY source = 'summary', segment_id) AS n,
           count(*) OVER (PARTITION BY task_id) AS matches
    FROM hits
)
SELECT task_id, source, segment_id, start_s, end_s, speaker,
       ts_headline(config, body, query, CASE WHEN source = 'summary' THEN %(summary)s ELSE %(segment)s END),
       matches
FROM ranked WHERE n <= %(per_hit)s ORDER BY task_id, n
"""


def _snippet(headline: str) -> str:
    return headline.replace(_START, "<mark>").replace(_STOP, "</mark>")


def _match(configs: list[str]) -> tuple[sql.Composable, dict[str, Any]]:
    """``s`` matches the query in its own configuration: one indexable ``@@`` per configuration."""
    params = {f"config_{n}": config for n, config in enumerate(configs)}
    arms = [
        sql.SQL(
            "(s.config = {0}::regconfig AND s.document @@ websearch_to_tsquery({0}::regconfig, %(q)s))"
        ).format(sql.Placeholder(name))
        for name in params
    ]
    return sql.SQL(" OR ").join(arms), params


def search(
    tenant: str, query: str, filters: TaskFilter, *, limit: int, cursor: str | None
) -> Work[tuple[list[SearchHit], str | None]]:
    """One page of the tenant's tasks whose newest result matches ``query``, newest first.

    Raises:
        InvalidRequestError: for an empty or overlong query, a bad limit, or a foreign cursor.
    """
    text = query.strip()
    if not text:
        raise InvalidRequestError("q must hold at least one word to search for")
    if len(text) > MAX_QUERY_CHARS:
        raise InvalidRequestError(f"q is longer than {MAX_QUERY_CHARS} characters; search for fewer words")
    check_limit(limit)
    where, params = filter_clause(tenant, filters, cursor)

    def op() -> Op[tuple[list[SearchHit], str | None]]:
        found = yield Statement(_CONFIGS, (tenant,))
        configs = [row[0] for row in found.rows]
        if not configs:
            return [], None
        match, config_params = _match(configs)
        page = sql.SQL(
            "SELECT tasks.submitted_at, tasks.task_id, tasks.filename, tasks.status, tasks.batch_id, "
            "tasks.template_id FROM tasks WHERE {} AND EXISTS ("
            "SELECT 1 FROM search_texts s WHERE s.task_id = tasks.task_id AND ({})) "
            "ORDER BY tasks.submitted_at DESC, tasks.task_id DESC LIMIT %(limit)s"
        ).format(where, match)
        tasks = yield Statement(page, {**params, **config_params, "q": text, "limit": limit + 1})
        rows = tasks.rows[:limit]
        if not rows:
            return [], None
        segments = yield Statement(
            _SEGMENTS,
            {
                "q": text,
                "configs": configs,
                "ids": [row[1] for row in rows],
                "segment": _SEGMENT_HEADLINE,
                "summary": _SUMMARY_HEADLINE,
                "per_hit": SEGMENTS_PER_HIT,
            },
        )
        texts: dict[str, list[SearchSegment]] = {}
        counts: dict[str, int] = {}
        for task_id, source, segment_id, start, end, speaker, headline, matches in segments.rows:
            texts.setdefault(task_id, []).append(
                SearchSegment(
                    source=source,
                    id=segment_id,
                    start=start,
                    end=end,
                    speaker=speaker,
                    snippet=_snippet(headline),
                )
            )
            counts[task_id] = int(matches)
        hits = [
            SearchHit(
                task_id=task_id,
                filename=filename,
                submitted_at=submitted_at,
                status=TaskStatus(status),
                batch_id=batch_id,
                template_id=template_id,
                matches=counts.get(task_id, 0),
                segments=texts.get(task_id, []),
            )
            for submitted_at, task_id, filename, status, batch_id, template_id in rows
        ]
        more = len(tasks.rows) > limit
        return hits, encode_cursor(rows[-1][0], rows[-1][1]) if more else None

    return Work(op, write=False)
