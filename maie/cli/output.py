"""How ``maie`` commands print: result formats, output files, errors."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from pathlib import Path

    from maie.errors import MaieError

__all__ = ["FORMATS", "emit", "fail"]

#: Formats of ``maie result`` and ``maie transcribe``.
FORMATS = ("txt", "srt", "vtt", "json")


def fail(exc: MaieError) -> click.ClickException:
    """The command-line error for ``exc``: its detail, exit status 1."""
    return click.ClickException(exc.detail)


def emit(text: str, output: Path | None) -> None:
    """Write ``text`` to ``output``, or to stdout when there is none."""
    if output is None:
        click.echo(text, nl=not text.endswith("\n"))
    else:
        output.write_text(text, encoding="utf-8")
