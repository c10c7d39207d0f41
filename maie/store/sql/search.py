"""Full-text search of a tenant's tasks (transcripts and summaries), newest first, cursor-paged.

The query is parsed with ``websearch_to_tsquery`` (words, ``"a phrase"``, ``or``, ``-word``) once
per text search configuration the tenant's texts use, and each parse is matched only against the
texts indexed with its configuration (see :mod:`maie.store.sql.search_index`). A search is three
statements: the tenant's configurations; one page of matching tasks from ``search_documents``
(one row per task), filtered and keyset-paged like :func:`maie.store.sql.listing.list_tasks`; and
the matching segments of those tasks with ``ts_headline`` snippets.

The page is planned for each query (never a prepared statement's generic plan): a rare word is
found through the GIN index, a common one by reading the tenant's tasks newest first until the
page is full, and only PostgreSQL's statistics on the actual words can tell which is cheaper. A
phrase that spans two segments finds its task; that hit then lists the segments holding any of
the query's words.
"""

from __future__ import annotations

import itertools
import re
from typing import TYPE_CHECKING, Any

from psycopg import sql

from maie.errors import InvalidRequestError
from maie.schemas import SearchHit, SearchSegment, TaskStatus
from maie.store.sql.listing import TaskFilter, check_limit, encode_cursor, filter_clause
from maie.store.sql.operations import Statement, Work

if TYPE_CHECKING:
    from maie.store.sql.operations import Op

__all__ = ["MAX_QUERY_CHARS", "SEGMENTS_PER_HIT", "search", "word_pairs"]

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
# With each configuration, the query as it parses there.
_CONFIGS = """
SELECT config::text, websearch_to_tsquery(config, %s)::text FROM search_configs WHERE tenant = %s ORDER BY 1
"""
#: A quoted lexeme of a tsquery's text form.
_LEXEME = r"'(?:[^'\\]|''|\\.)*'"
#: A query of words and phrases only, all required: ``'a' <-> 'b' & 'c'``.
_PLAIN = re.compile(rf"^{_LEXEME}(?: (?:<->|&) {_LEXEME})*$")
#: Tasks a search reads newest first before it looks the query up in the GIN index instead.
WALK_BUDGET = 200
#: A page of tasks first comes from reading the newest ``WALK_BUDGET`` tasks and testing each
#: (through its key, never the GIN index: at most that many probes). A query that matches many
#: recordings fills its page there; one that does not is rare, so its GIN lookup is cheap. Which
#: is which cannot be left to the planner: it misjudges phrases (two common words look adjacent
#: in most recordings) and rare words enough to read every recording one by one.
_WALK = """
SELECT tasks.submitted_at, tasks.task_id, tasks.filename, tasks.status, tasks.batch_id, tasks.template_id
FROM (SELECT * FROM tasks WHERE {where} ORDER BY submitted_at DESC, task_id DESC LIMIT %(budget)s) tasks
WHERE EXISTS (SELECT 1 FROM {table} d WHERE d.task_id = tasks.task_id AND ({match}))
ORDER BY tasks.submitted_at DESC, tasks.task_id DESC LIMIT %(limit)s
"""
_LOOKUP = """
WITH matched AS MATERIALIZED (SELECT DISTINCT d.task_id FROM {table} d WHERE ({match}))
SELECT tasks.submitted_at, tasks.task_id, tasks.filename, tasks.status, tasks.batch_id, tasks.template_id
FROM tasks JOIN matched ON matched.task_id = tasks.task_id WHERE {where}
ORDER BY tasks.submitted_at DESC, tasks.task_id DESC LIMIT %(limit)s
"""
#: For the lookup, the GIN index whatever the estimate (the walk found the query to be rare).
_NO_SEQSCAN = "SET LOCAL enable_seqscan = off"


# {query} is the query as written, or (for hits with no segment matching it) any of its words.
_SEGMENTS = """
WITH q AS (
    SELECT c.config, {query} AS query FROM unnest(%(configs)s::regconfig[]) AS c(config)
), hits AS (
    -- A segment that matched in both transcripts counts once, as its clean text.
    SELECT DISTINCT ON (s.task_id, s.source = 'summary', s.segment_id)
           s.task_id, s.source, s.segment_id, s.start_s, s.end_s, s.speaker, s.body, s.config, q.query
    FROM search_texts s JOIN q ON s.config = q.config
    -- ts_match_vq is @@ as a function, which no index serves: the page's few tasks' rows are read
    -- by task id, never through the GIN index (that would visit every row of a common word).
    WHERE s.task_id = ANY(%(ids)s) AND ts_match_vq(s.document, q.query)
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
_EXACT = _SEGMENTS.replace("{query}", "websearch_to_tsquery(c.config, %(q)s)")
_ANY_WORD = _SEGMENTS.replace(
    "{query}",
    "(SELECT string_agg(quote_literal(w), ' | ')::tsquery "
    "FROM unnest(tsvector_to_array(to_tsvector(c.config, %(q)s))) AS w)",
)


def _snippet(headline: str) -> str:
    return headline.replace(_START, "<mark>").replace(_STOP, "</mark>")


def word_pairs(parsed: str) -> str | None:
    """The word pairs of a parsed query's phrases as a tsquery (``'a b' & 'b c'``), or None.

    Only for a query of required words and phrases (no ``or``, no ``-word``); the pairs are what
    ``maie_with_pairs`` adds to each segment's tsvector, so the GIN index finds a phrase's
    segments by its pairs, and ``@@`` then checks the phrase itself.
    """
    if "<->" not in parsed or not _PLAIN.match(parsed):
        return None
    pairs = []
    for chain in parsed.split(" & "):
        words = [w[1:-1] for w in re.findall(_LEXEME, chain)]
        pairs += [f"{a} {b}" for a, b in itertools.pairwise(words)]
    return " & ".join("'" + pair + "'" for pair in pairs) or None


def _match(parsed: dict[str, str], *, indexed: bool) -> tuple[sql.Composable, dict[str, Any]]:
    """``d`` matches the query in its own configuration: one ``@@`` per configuration.

    ``indexed=False`` writes ``@@`` as the function ``ts_match_vq``, which no index serves.
    """
    params: dict[str, Any] = {}
    arms = []
    for n, (config, text) in enumerate(parsed.items()):
        name = f"config_{n}"
        params[name] = config
        query: sql.Composable = sql.SQL("websearch_to_tsquery({}::regconfig, %(q)s)").format(
            sql.Placeholder(name)
        )
        if pairs := word_pairs(text):
            params[f"pairs_{n}"] = pairs
            query = sql.SQL("({} && {}::tsquery)").format(query, sql.Placeholder(f"pairs_{n}"))
        test = "d.document @@ {}" if indexed else "ts_match_vq(d.document, {})"
        arms.append(
            sql.SQL("(d.config = {}::regconfig AND " + test + ")").format(sql.Placeholder(name), query)
        )
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
        found = yield Statement(_CONFIGS, (text, tenant))
        parsed: dict[str, str] = dict(found.rows)
        configs = list(parsed)
        if not configs:
            return [], None
        # A phrase matches within one segment; any other query within the task's whole text.
        phrase = any(re.search(r"<(?:-|[0-9]+)>", text) for text in parsed.values())
        table = sql.Identifier("search_texts" if phrase else "search_documents")
        probe, config_params = _match(parsed, indexed=False)
        values = {**params, **config_params, "q": text, "limit": limit + 1, "budget": WALK_BUDGET}
        walk = sql.SQL(_WALK).format(where=where, table=table, match=probe)
        tasks = yield Statement(walk, values, prepare=False)
        if len(tasks.rows) <= limit:
            lookup, _ = _match(parsed, indexed=True)
            yield Statement(_NO_SEQSCAN)
            tasks = yield Statement(
                sql.SQL(_LOOKUP).format(where=where, table=table, match=lookup), values, prepare=False
            )
        rows = tasks.rows[:limit]
        if not rows:
            return [], None
        ids = [row[1] for row in rows]
        segments_params = {
            "q": text,
            "configs": configs,
            "ids": ids,
            "segment": _SEGMENT_HEADLINE,
            "summary": _SUMMARY_HEADLINE,
            "per_hit": SEGMENTS_PER_HIT,
        }
        segments = yield Statement(_EXACT, segments_params)
        found_rows = list(segments.rows)
        if missing := sorted(set(ids) - {row[0] for row in found_rows}):
            loose = yield Statement(_ANY_WORD, {**segments_params, "ids": missing})
            found_rows += loose.rows
        texts: dict[str, list[SearchSegment]] = {}
        counts: dict[str, int] = {}
        for task_id, source, segment_id, start, end, speaker, headline, matches in found_rows:
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

    return Work(op, transaction=True)  # for SET LOCAL
