"""How ``maie`` commands print: result formats, output files, errors."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from collections.abc import Callable

    from maie.errors import MaieError

__all__ = ["FORMATS", "emit", "fail", "format_option", "output_option"]

F = TypeVar("F", bound="Callable[..., Any]")

#: Formats of ``maie result`` and ``maie transcribe`` (``rttm``: a diarized result's turns).
FORMATS = ("txt", "srt", "vtt", "json", "rttm")

#: ``-o/--output FILE``: where a command writes instead of stdout.
output_option = click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write to this file instead of stdout.",
)


def format_option(json_help: str) -> Callable[[F], F]:
    """``--format`` (txt, srt, vtt, json or rttm; parameter ``fmt``), saying what ``json`` is."""
    return click.option(
        "--format", "fmt", type=click.Choice(FORMATS), default="txt", show_default=True, help=json_help
    )


def fail(exc: MaieError) -> click.ClickException:
    """The command-line error for ``exc``: its detail, exit status 1."""
    return click.ClickException(exc.detail)


def emit(text: str, output: Path | None) -> None:
    """Write ``text`` to ``output``, or to stdout when there is none."""
    if output is None:
        click.echo(text, nl=not text.endswith("\n"))
    else:
        output.write_text(text, encoding="utf-8")
