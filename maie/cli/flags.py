"""The flags of ``maie submit``: one per submission field, made from the list itself.

Each field of :class:`~maie.schemas.SubmissionOptions` becomes ``--field-name`` with the field's
description as help: a flag pair ``--x/--no-x`` for a yes/no field, an integer or text option
otherwise, and a comma-separated text option for a list. A field added to the list is a flag of
``maie submit`` without an edit here.

Two conveniences go beyond the list: ``--speakers N`` is another name of ``--num-speakers``
(:data:`ALIASES`), and giving a speaker count or a diarizer implies ``--diarize``
(:data:`IMPLIES`) unless ``--no-diarize`` says otherwise.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

import click
import msgspec

from maie.schemas import SubmissionOptions

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

__all__ = [
    "ALIASES",
    "IMPLIES",
    "SUBMISSION_FLAGS",
    "SubmissionFlag",
    "submission_flags",
    "submission_values",
]

F = TypeVar("F", bound="Callable[..., Any]")

#: More flag names of some fields.
ALIASES: dict[str, tuple[str, ...]] = {"num_speakers": ("--speakers",)}
#: A yes/no field that a set field implies, when it is not given itself.
IMPLIES: dict[str, str] = {
    "diarization_backend": "diarize",
    "num_speakers": "diarize",
    "min_speakers": "diarize",
    "max_speakers": "diarize",
}


class SubmissionFlag(NamedTuple):
    """The command-line flag of one submission field."""

    #: The field (and the command's parameter) name.
    name: str
    #: ``bool``, ``int``, ``str``, or ``list`` for a comma-separated list of text.
    kind: type
    help: str

    @property
    def flag(self) -> str:
        """``--field-name``."""
        return "--" + self.name.replace("_", "-")

    def option(self) -> Callable[[F], F]:
        """The click option of this flag; unset, it is None (the server's default)."""
        if self.kind is bool:
            return click.option(f"{self.flag}/--no-{self.flag[2:]}", self.name, default=None, help=self.help)
        kind = int if self.kind is int else str
        names = (self.flag, *ALIASES.get(self.name, ()))
        return click.option(*names, self.name, type=kind, default=None, help=self.help)

    def value(self, given: object) -> object:
        """The field's value from the flag's (a list from comma-separated text; None when unset or empty)."""
        if self.kind is list and isinstance(given, str):
            items = tuple(item.strip() for item in given.split(",") if item.strip())
            return items or None
        return given


def _flag(name: str, hint: Any) -> SubmissionFlag:  # noqa: ANN401 - a type hint of any shape
    """The flag of field ``name``, whose hint is ``Annotated[X | None, msgspec.Meta(description=...)]``."""
    meta = next((m for m in typing.get_args(hint)[1:] if isinstance(m, msgspec.Meta)), None)
    if meta is None or not meta.description:
        msg = f"submission field {name!r} needs a description (msgspec.Meta): it is its --help"
        raise TypeError(msg)
    inner = typing.get_args(hint)[0]
    kinds = (
        [t for t in typing.get_args(inner) if t is not types.NoneType] if typing.get_args(inner) else [inner]
    )
    if len(kinds) != 1:
        msg = f"submission field {name!r} has a type the command line cannot take: {inner}"
        raise TypeError(msg)
    kind = kinds[0]
    if typing.get_origin(kind) in {list, tuple, Sequence}:
        return SubmissionFlag(name, list, meta.description)
    if kind not in {bool, int, str}:
        msg = f"submission field {name!r} has a type the command line cannot take: {kind}"
        raise TypeError(msg)
    return SubmissionFlag(name, kind, meta.description)


#: One flag per submission field, in the list's order.
SUBMISSION_FLAGS: tuple[SubmissionFlag, ...] = tuple(
    _flag(name, hint)
    for name, hint in typing.get_type_hints(SubmissionOptions, include_extras=True).items()
    if name in SubmissionOptions.__struct_fields__
)


def submission_flags(command: F) -> F:
    """Add the flag of every submission field to ``command`` (its parameters take the field names)."""
    for flag in reversed(SUBMISSION_FLAGS):  # click shows options in decorator order, outermost first
        command = flag.option()(command)
    return command


def submission_values(params: Mapping[str, object]) -> dict[str, object]:
    """The submission fields from a command's parameters, converted; unset flags are left out.

    A field of :data:`IMPLIES` that is set turns its yes/no field on when that was not given.
    """
    values = {flag.name: flag.value(params.get(flag.name)) for flag in SUBMISSION_FLAGS}
    for name, implied in IMPLIES.items():
        if values.get(name) is not None and values.get(implied) is None:
            values[implied] = True
    return {name: value for name, value in values.items() if value is not None}
