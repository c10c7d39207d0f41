"""One list of submission fields: the API's forms, TaskRequest, the client and `maie submit` agree.

The list is :class:`maie.schemas.SubmissionOptions`. A field added there must reach every place
that takes a submission; where a place cannot follow it by itself (type checkers need the
client's keyword arguments spelled out), these tests say what to add.
"""

from __future__ import annotations

import re
import typing
from collections.abc import Sequence
from pathlib import Path

import click
import msgspec
import pytest

import maie.client
from maie.api.intake.form import BatchForm, ProcessForm
from maie.cli.flags import SUBMISSION_FLAGS, submission_values
from maie.cli.remote import submit
from maie.client._http import SubmitFields
from maie.schemas import SubmissionOptions, TaskRequest

FIELDS = SubmissionOptions.__struct_fields__
#: A value of each kind of field, and how it is typed on the command line.
SAMPLES: dict[type, object] = {list: ["raw_transcript", "summary"], bool: False, int: 4, str: "some text"}
FLAG_SAMPLES = {list: "raw_transcript, summary", int: "4", str: "some text"}
DOCS_API = Path(__file__).parents[2] / "docs" / "api.md"


def _plain(hint: object) -> object:
    """A type hint without its ``Annotated`` metadata."""
    return typing.get_args(hint)[0] if typing.get_origin(hint) is typing.Annotated else hint


class TestTheList:
    def test_every_field_is_optional_and_described(self):
        """None leaves an option to the server; the description is the flag's help and the schema's."""
        hints = typing.get_type_hints(SubmissionOptions, include_extras=True)
        for field in msgspec.structs.fields(SubmissionOptions):
            assert field.default is None, field.name
            meta = [m for m in typing.get_args(hints[field.name])[1:] if isinstance(m, msgspec.Meta)]
            assert meta, f"{field.name} needs an Annotated[..., msgspec.Meta(description=...)]"
            assert meta[0].description


class TestServer:
    @pytest.mark.parametrize("form", [ProcessForm, BatchForm])
    def test_the_forms_are_the_fields_and_the_recording(self, form):
        """The recording is an upload (``file``) or a link to it (``url``)."""
        assert issubclass(form, SubmissionOptions)
        assert form.__struct_fields__ == (*FIELDS, "file", "url")

    def test_task_request_holds_every_field_and_the_labels_of_the_recording(self):
        assert issubclass(TaskRequest, SubmissionOptions)
        assert set(TaskRequest.__struct_fields__) == {*FIELDS, "filename", "source_url"}

    def test_docs_list_every_field_of_post_process(self):
        table = DOCS_API.read_text(encoding="utf-8").split("## POST /v1/process", 1)[1].split("\n## ", 1)[0]
        documented = set(re.findall(r"^\| `(\w+)` \|", table, flags=re.MULTILINE))
        assert set(FIELDS) <= documented, "document the new field in docs/api.md (POST /v1/process)"


class TestClient:
    def test_submit_options_are_the_fields(self):
        assert maie.client.SubmitOptions.__struct_fields__ == FIELDS
        assert issubclass(maie.client.SubmitOptions, SubmissionOptions)

    def test_the_keyword_arguments_are_the_fields(self):
        """``submit(path, **fields)`` is typed by SubmitFields: add the new field there too."""
        keywords = typing.get_type_hints(SubmitFields, localns={"Sequence": Sequence})
        fields = typing.get_type_hints(SubmissionOptions)
        assert keywords == {name: _plain(fields[name]) for name in FIELDS}

    def test_every_field_reaches_the_form(self):
        form = maie.client.SubmitOptions.of(**{f.name: SAMPLES[f.kind] for f in SUBMISSION_FLAGS}).form()
        assert set(form) == set(FIELDS)
        assert all(form[f.name] == "false" for f in SUBMISSION_FLAGS if f.kind is bool)


class TestCommandLine:
    def test_maie_submit_has_a_flag_per_field(self):
        options = {p.name for p in submit.params if isinstance(p, click.Option)}
        assert {flag.name for flag in SUBMISSION_FLAGS} == set(FIELDS)
        assert set(FIELDS) <= options

    def test_the_flags_make_the_options(self, tmp_path):
        """Every flag given on the command line arrives in the options the client sends."""
        recording = tmp_path / "a.wav"
        recording.write_bytes(b"")
        args = [str(recording)]
        for flag in SUBMISSION_FLAGS:
            args += [f"--no-{flag.flag[2:]}"] if flag.kind is bool else [flag.flag, FLAG_SAMPLES[flag.kind]]
        context = submit.make_context("submit", args)
        options = msgspec.convert(submission_values(context.params), maie.client.SubmitOptions)
        assert msgspec.structs.asdict(options) == {f.name: SAMPLES[f.kind] for f in SUBMISSION_FLAGS}

    def test_unset_flags_leave_the_server_defaults(self, tmp_path):
        recording = tmp_path / "a.wav"
        recording.write_bytes(b"")
        context = submit.make_context("submit", [str(recording)])
        options = msgspec.convert(submission_values(context.params), maie.client.SubmitOptions)
        assert options.form() == {}
