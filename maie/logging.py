"""structlog set-up shared by the API and the worker.

Events are key-value (``log.info("asr.finished", rtf=0.05)``); context bound with
``structlog.contextvars.bind_contextvars`` (``task_id``, ``request_id``) is merged into every line,
so one task's API and worker lines can be joined. JSON for log shippers, console for people.
"""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING

import structlog

if TYPE_CHECKING:
    from maie.config import LogSettings

__all__ = ["configure_logging"]


def configure_logging(settings: LogSettings, *, process: str) -> None:
    """Route structlog and the standard library's logging through one renderer.

    Args:
        settings: Level and format.
        process: Name of this process (``api``, ``worker``, ``up``), added to every line.
    """
    level = getattr(logging, settings.level.upper())
    use_json = settings.format == "json" or (settings.format == "auto" and not sys.stderr.isatty())
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _add_process(process),
    ]
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if use_json else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(level),
        cache_logger_on_first_use=True,
    )
    # Libraries (dramatiq, uvicorn, faster-whisper) log through the standard library; give their
    # records the same processors and renderer so the stream stays one format.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Polling clients make uvicorn's access log the loudest thing in the stream; MAIE logs requests itself.
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)


def _add_process(name: str) -> structlog.types.Processor:
    def add(_: object, __: str, event: structlog.types.EventDict) -> structlog.types.EventDict:
        event.setdefault("process", name)
        return event

    return add
