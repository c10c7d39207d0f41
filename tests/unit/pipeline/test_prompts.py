"""Template catalog: schemas checked, prompts compiled, hashes of what was read."""

from __future__ import annotations

import hashlib
import json

import pytest
from jsonschema import Draft202012Validator

from maie.errors import NotFoundError, UnprocessableError
from maie.pipeline.prompts import TemplateCatalog, default_templates_dir
from maie.schemas import Segment

SHIPPED = (
    "interview_notes_v1",
    "interview_notes_v2",
    "lecture_notes_v1",
    "meeting_notes_v1",
    "meeting_notes_v2",
)


def write(root, template_id, schema, prompt="{{ schema_json }}"):
    (root / "prompts").mkdir(parents=True, exist_ok=True)
    (root / f"{template_id}.json").write_text(schema if isinstance(schema, str) else json.dumps(schema))
    (root / "prompts" / f"{template_id}.jinja").write_text(prompt)


class TestShipped:
    """Every shipped template is a valid schema with a prompt that renders the transcript."""

    @pytest.mark.parametrize("template_id", SHIPPED)
    def test_schema_and_prompt(self, template_id):
        template = TemplateCatalog(default_templates_dir()).get(template_id)
        Draft202012Validator.check_schema(template.schema)
        assert template.name
        assert template.description
        assert template.schema["additionalProperties"] is False
        segments = [Segment(id=7, start=1.25, end=3.5, text="we ship on friday")]
        text = template.render(segments=segments, language="en", part=None, parts=None)
        assert "[7] 1.2-3.5 we ship on friday" in text or "[7] 1.3-3.5 we ship on friday" in text
        assert json.dumps(template.schema, ensure_ascii=False) in text
        assert " of 5 " not in text
        parted = template.render(segments=segments, language="en", part=2, parts=5)
        assert "part 2 of 5 " in parted

    def test_all_listed(self):
        assert tuple(t.template_id for t in TemplateCatalog(default_templates_dir()).all()) == SHIPPED

    def test_meeting_notes_cite_segments(self):
        schema = TemplateCatalog(default_templates_dir()).get("meeting_notes_v1").schema
        for field in ("decisions", "action_items"):
            item = schema["properties"][field]["items"]
            assert "segment_ids" in item["required"]
            assert item["properties"]["segment_ids"]["minItems"] == 1
        assert set(schema["properties"]["action_items"]["items"]["required"]) >= {"owner", "task", "due_date"}


class TestSpeakerTemplates:
    """The v2 templates take their people from the speakers; the v1 ones stay as they were."""

    def test_meeting_notes_v2_participants_and_owners_are_speakers(self):
        schema = TemplateCatalog(default_templates_dir()).get("meeting_notes_v2").schema
        participant = schema["properties"]["participants"]["items"]
        assert participant["required"] == ["speaker", "name", "role"]
        owner = schema["properties"]["action_items"]["items"]["properties"]["owner"]
        assert "SPEAKER_01" in owner["description"]

    def test_interview_notes_v2_name_interviewer_and_interviewee(self):
        schema = TemplateCatalog(default_templates_dir()).get("interview_notes_v2").schema
        assert {"interviewer", "interviewee"} <= set(schema["required"])
        roles = schema["properties"]["participants"]["items"]["properties"]["role"]["enum"]
        assert roles == ["interviewer", "interviewee", "other"]

    @pytest.mark.parametrize(
        ("template_id", "sha256"),
        [
            ("meeting_notes_v1", "feb5a204a4bae11b616ee1af681d0ab8390e70de465796315c30dcf6274b528f"),
            ("interview_notes_v1", "f1711919850c5b059753a4b9ba82ab1958ba7197f3487172dc2b944ca9e6cedb"),
        ],
    )
    def test_v1_schemas_are_unchanged(self, template_id, sha256):
        """Stored summaries validate against their own template: a changed schema is a new version."""
        assert TemplateCatalog(default_templates_dir()).get(template_id).schema_sha256 == sha256

    @pytest.mark.parametrize("template_id", ["meeting_notes_v2", "interview_notes_v2"])
    def test_prompt_explains_speaker_lines(self, template_id):
        template = TemplateCatalog(default_templates_dir()).get(template_id)
        line = "SPEAKER_01: I will send it"
        segments = [Segment(id=3, start=0.0, end=2.0, text=line, speaker="SPEAKER_01")]
        text = template.render(segments=segments, language="en", part=None, parts=None)
        assert "[3] 0.0-2.0 SPEAKER_01: I will send it" in text
        assert "exactly as the lines name them" in text


class TestChecks:
    """A broken template is refused when read, with the reason."""

    def test_hashes_are_of_the_files(self, tmp_path):
        write(tmp_path, "t1", {"type": "object", "title": "T"}, "Say {{ schema_json }}")
        template = TemplateCatalog(tmp_path).get("t1")
        assert template.schema_sha256 == hashlib.sha256((tmp_path / "t1.json").read_bytes()).hexdigest()
        assert (
            template.prompt_sha256 == hashlib.sha256((tmp_path / "prompts/t1.jinja").read_bytes()).hexdigest()
        )
        version = template.version()
        assert (version.template_id, version.schema_sha256) == ("t1", template.schema_sha256)

    def test_invalid_schema(self, tmp_path):
        write(tmp_path, "bad", {"type": "object", "properties": {"a": {"type": "nope"}}})
        with pytest.raises(UnprocessableError, match="invalid JSON Schema"):
            TemplateCatalog(tmp_path).get("bad")

    def test_root_must_be_an_object(self, tmp_path):
        write(tmp_path, "arr", {"type": "array"})
        with pytest.raises(UnprocessableError, match="root must be an object"):
            TemplateCatalog(tmp_path).get("arr")

    def test_broken_prompt(self, tmp_path):
        write(tmp_path, "p", {"type": "object"}, "{% for x in %}")
        with pytest.raises(UnprocessableError, match="broken prompt"):
            TemplateCatalog(tmp_path).get("p")

    def test_not_json(self, tmp_path):
        write(tmp_path, "j", "{nope")
        with pytest.raises(UnprocessableError, match="unreadable schema"):
            TemplateCatalog(tmp_path).get("j")

    def test_undefined_variable_fails_at_render(self, tmp_path):
        write(tmp_path, "u", {"type": "object"}, "{{ no_such_thing }}")
        template = TemplateCatalog(tmp_path).get("u")
        with pytest.raises(UnprocessableError, match=r"'u'.*no_such_thing"):
            template.render(segments=[])

    def test_sandboxed(self, tmp_path):
        write(tmp_path, "s", {"type": "object"}, "{{ segments.__class__.__mro__ }}")
        template = TemplateCatalog(tmp_path).get("s")
        with pytest.raises(UnprocessableError, match=r"SecurityError|unsafe"):
            template.render(segments=[])

    def test_broken_ones_are_left_out_of_the_list(self, tmp_path):
        write(tmp_path, "good", {"type": "object"})
        write(tmp_path, "bad", {"type": "array"})
        assert [t.template_id for t in TemplateCatalog(tmp_path).all()] == ["good"]

    def test_unknown(self, tmp_path):
        with pytest.raises(NotFoundError):
            TemplateCatalog(tmp_path).get("nope")
