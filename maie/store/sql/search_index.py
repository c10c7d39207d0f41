"""What search finds of a task: the texts of its newest result version, one row per segment.

Each raw segment (ASR), each clean segment (the enhancement's, when the result has a clean
transcript) and the summary (every string in it) is a row of ``search_texts`` with its segment
id, times and speaker, so a hit names the segments that matched. The row's ``document`` is a
tsvector PostgreSQL computes from the text with the task's text search configuration: the one of
its language where PostgreSQL has one (English words are stemmed, ``meetings`` finds
``meeting``), else ``simple`` (words as written, lower-cased; it works for every language).
All the texts of a task together are also one row of ``search_documents``, where a search finds
its page of tasks. The rows are replaced whenever a newer version is stored, in the same
transaction.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

from maie.schemas import EnhanceArtifact, StageName
from maie.store.sql.operations import Statement, decode_optional, plain_text

if TYPE_CHECKING:
    from maie.schemas import ResultVersion, Segment, TaskRecord
    from maie.store.sql.operations import Op

__all__ = ["CONFIGS", "DOCUMENT", "SIMPLE", "clean_text", "config_for", "follow", "summary_text"]

#: The configuration of languages PostgreSQL has none for.
SIMPLE = "simple"
#: ISO 639-1 codes with a text search configuration of their own in PostgreSQL 18.
CONFIGS = {
    "ar": "arabic", "ca": "catalan", "da": "danish", "de": "german", "el": "greek", "en": "english",
    "es": "spanish", "et": "estonian", "eu": "basque", "fi": "finnish", "fr": "french", "ga": "irish",
    "hi": "hindi", "hu": "hungarian", "hy": "armenian", "id": "indonesian", "it": "italian",
    "lt": "lithuanian", "nb": "norwegian", "ne": "nepali", "nl": "dutch", "nn": "norwegian",
    "no": "norwegian", "pt": "portuguese", "ro": "romanian", "ru": "russian", "sr": "serbian",
    "sv": "swedish", "ta": "tamil", "tr": "turkish", "yi": "yiddish",
}  # fmt: skip

# A configuration an older external server lacks falls back to simple instead of failing the write.
_INSERT = """
INSERT INTO search_texts (task_id, source, segment_id, start_s, end_s, speaker, body, config)
VALUES (%s, %s, %s, %s, %s, %s, %s, coalesce(
    (SELECT oid::regconfig FROM pg_ts_config
     WHERE cfgname = %s AND cfgnamespace = 'pg_catalog'::regnamespace),
    'simple'::regconfig))
"""
_CLEAR = "DELETE FROM search_texts WHERE task_id = %s"
_CLEAR_DOCUMENT = "DELETE FROM search_documents WHERE task_id = %s"
#: The task's document, made from the rows just written (all of one task share a configuration).
DOCUMENT = """
INSERT INTO search_documents (task_id, tenant, config, document)
SELECT s.task_id, %s, s.config, to_tsvector(s.config, string_agg(s.body, E'\n' ORDER BY s.id))
FROM search_texts s WHERE s.task_id = %s GROUP BY s.task_id, s.config
"""
_CONFIG = """
INSERT INTO search_configs (tenant, config) VALUES (%s, coalesce(
    (SELECT oid::regconfig FROM pg_ts_config
     WHERE cfgname = %s AND cfgnamespace = 'pg_catalog'::regnamespace),
    'simple'::regconfig))
ON CONFLICT DO NOTHING
"""
_ENHANCED = "SELECT body FROM artifacts WHERE task_id = %s AND stage = %s"
#: Characters that cannot be stored (NUL) or that mark highlights in snippets (STX, ETX).
_UNSAFE = str.maketrans({"\x00": " ", "\x02": " ", "\x03": " "})


def config_for(language: str | None) -> str:
    """The text search configuration of ``language`` (``en``, ``pt-BR``...), ``simple`` if none."""
    if not language:
        return SIMPLE
    return CONFIGS.get(language.lower().replace("_", "-").partition("-")[0], SIMPLE)


def clean_text(text: str) -> str:
    """``text`` as the index keeps it: HTML-escaped, without NUL or highlight markers.

    PostgreSQL's parser reads ``<...>`` as markup and skips what follows ``<script>`` or
    ``<style>``, so a transcript saying "a <script> tag" would lose words. Escaped, ``&lt;`` is an
    entity it passes over, and ``ts_headline`` hands back snippets that are already safe HTML.
    """
    return html.escape(plain_text(text.translate(_UNSAFE)), quote=False)


def summary_text(value: object) -> str:
    """Every string in a summary (nested lists and objects included), one per line, in order."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return "\n".join(filter(None, (summary_text(v) for v in value.values())))
    if isinstance(value, list):
        return "\n".join(filter(None, (summary_text(v) for v in value)))
    return ""


def _segment_rows(task_id: str, source: str, segments: list[Segment], config: str) -> list[tuple[Any, ...]]:
    return [
        (
            task_id,
            source,
            s.id,
            s.start,
            s.end,
            getattr(s, "speaker", None),
            clean_text(s.text),
            config,
        )
        for s in segments
        if s.text.strip()
    ]


def follow(record: TaskRecord, result: ResultVersion) -> Op[None]:
    """Replace the task's rows with the texts of ``result`` (its newest version)."""
    task_id = record.task_id
    results = result.results
    config = config_for(results.language or record.request.language)
    rows: list[tuple[Any, ...]] = []
    if results.segments:
        rows += _segment_rows(task_id, "raw", results.segments, config)
    elif results.raw_transcript:
        rows.append((task_id, "raw", None, None, None, None, clean_text(results.raw_transcript), config))
    if results.clean_transcript:
        found = yield Statement(_ENHANCED, (task_id, StageName.ENHANCE.value))
        enhanced = decode_optional(found.rows[0][0] if found.rows else None, EnhanceArtifact)
        if enhanced is not None and enhanced.segments:
            rows += _segment_rows(task_id, "clean", enhanced.segments, config)
        else:
            rows.append(
                (task_id, "clean", None, None, None, None, clean_text(results.clean_transcript), config)
            )
    if results.summary and (text := summary_text(results.summary).strip()):
        rows.append((task_id, "summary", None, None, None, None, clean_text(text), config))
    yield Statement(_CLEAR, (task_id,))
    yield Statement(_CLEAR_DOCUMENT, (task_id,))
    if rows:
        yield Statement(_INSERT, many=rows)
        yield Statement(DOCUMENT, (record.tenant, task_id))
        yield Statement(_CONFIG, (record.tenant, config))
