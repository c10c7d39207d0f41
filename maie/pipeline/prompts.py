"""Summary templates, each a JSON Schema and a prompt; and MAIE's own prompts.

``templates/<id>.json`` is the JSON Schema (with title and description) a summary must validate
against; ``templates/prompts/<id>.jinja`` is the prompt that asks for it. A template is checked
when it is read: its schema must be a valid JSON Schema (draft 2020-12) whose root is an object,
and its prompt must compile, so a broken template is refused at submit time (422), never found
out later in a worker.

Prompts are Jinja templates rendered in a sandbox with undefined variables as errors. A template
prompt gets ``segments`` (each with ``id``, ``start``, ``end``, ``text`` and ``speaker``; a
diarized segment's ``text`` starts with its speaker, ``SPEAKER_00: ...``), ``schema_json``,
``language`` (ISO code or ``None``), ``template_id``, and ``part`` / ``parts`` (both ``None``
unless the transcript is summarised in parts, see docs/llm.md).
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import msgspec
import structlog
from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jsonschema import Draft202012Validator, SchemaError

from maie.errors import NotFoundError, UnprocessableError
from maie.schemas import TemplateVersion

__all__ = ["Prompt", "Template", "TemplateCatalog", "default_templates_dir", "render_prompt"]

log = structlog.get_logger(__name__)

#: Template ids are file stems; this pattern keeps them from naming anything outside the folder.
TEMPLATE_ID = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,63}$")

#: Prompts are plain text, not HTML, so nothing is escaped; the sandbox keeps a template file
#: from reaching Python internals.
_JINJA = ImmutableSandboxedEnvironment(
    undefined=StrictUndefined, keep_trailing_newline=True, autoescape=False
)


def default_templates_dir() -> Path:
    """Templates shipped with MAIE: inside an installed wheel, else the repository's ``templates/``."""
    packaged = Path(__file__).resolve().parents[1] / "_data" / "templates"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parents[2] / "templates"


class Prompt(msgspec.Struct, frozen=True, kw_only=True):
    """A prompt's text and the sha256 of its file."""

    text: str
    sha256: str

    @classmethod
    def read(cls, path: Path) -> Prompt:
        """Read and compile a prompt file.

        Raises:
            OSError: if it cannot be read.
            jinja2.TemplateSyntaxError: if it does not compile.
        """
        data = path.read_bytes()
        text = data.decode("utf-8")
        _JINJA.parse(text)
        return cls(text=text, sha256=hashlib.sha256(data).hexdigest())

    def render(self, **context: Any) -> str:  # noqa: ANN401 - prompt variables are free-form
        """Render with ``context``.

        Raises:
            UnprocessableError: if the prompt uses an undefined variable or fails to render.
        """
        return render_prompt(self.text, **context)


def render_prompt(text: str, **context: Any) -> str:  # noqa: ANN401 - prompt variables are free-form
    """Render prompt ``text`` in the sandbox.

    Raises:
        UnprocessableError: if the prompt uses an undefined variable or fails to render.
    """
    try:
        return _JINJA.from_string(text).render(**context)
    except TemplateError as exc:
        raise UnprocessableError(f"a prompt failed to render: {type(exc).__name__}: {exc}") from exc


class Template(msgspec.Struct, frozen=True, kw_only=True):
    """One summary template, read and checked."""

    template_id: str
    name: str
    description: str
    schema: dict[str, Any]
    schema_path: Path
    prompt_path: Path
    #: The prompt as read (hash and text from the same bytes).
    prompt: Prompt
    #: sha256 of the schema file as read.
    schema_sha256: str

    @property
    def prompt_sha256(self) -> str:
        """sha256 of the prompt file as read."""
        return self.prompt.sha256

    def version(self) -> TemplateVersion:
        """What a result records about this template."""
        return TemplateVersion(
            template_id=self.template_id, schema_sha256=self.schema_sha256, prompt_sha256=self.prompt_sha256
        )

    def validator(self) -> Draft202012Validator:
        """A validator of the schema."""
        return Draft202012Validator(self.schema)

    def render(self, **context: Any) -> str:  # noqa: ANN401 - prompt variables are free-form
        """Render the prompt; ``schema_json`` and ``template_id`` are filled in.

        Raises:
            UnprocessableError: if the prompt fails to render.
        """
        context.setdefault("schema_json", json.dumps(self.schema, ensure_ascii=False))
        context.setdefault("template_id", self.template_id)
        try:
            return self.prompt.render(**context)
        except UnprocessableError as exc:
            raise UnprocessableError(f"template {self.template_id!r}: {exc.detail}") from exc


class TemplateCatalog:
    """The templates in one folder, read when asked (so new files show up without a restart)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def ids(self) -> list[str]:
        """Ids of the templates that have both a schema and a prompt."""
        if not self.root.is_dir():
            return []
        return sorted(
            p.stem
            for p in self.root.glob("*.json")
            if TEMPLATE_ID.match(p.stem) and (self.root / "prompts" / f"{p.stem}.jinja").is_file()
        )

    def get(self, template_id: str) -> Template:
        """Load and check one template.

        Raises:
            NotFoundError: if there is no such template.
            UnprocessableError: if its schema is not valid JSON, not a valid JSON Schema with an
                object at its root, or its prompt does not compile.
        """
        if not TEMPLATE_ID.match(template_id) or template_id not in self.ids():
            raise NotFoundError(
                f"template {template_id!r} not found; known templates: {', '.join(self.ids())}"
            )
        schema_path = self.root / f"{template_id}.json"
        prompt_path = self.root / "prompts" / f"{template_id}.jinja"
        try:
            schema_bytes = schema_path.read_bytes()
            schema = json.loads(schema_bytes)
            Draft202012Validator.check_schema(schema)
            prompt = Prompt.read(prompt_path)
        except SchemaError as exc:
            raise UnprocessableError(
                f"template {template_id!r} has an invalid JSON Schema: {exc.message}"
            ) from exc
        except TemplateError as exc:
            raise UnprocessableError(f"template {template_id!r} has a broken prompt: {exc}") from exc
        except (OSError, ValueError) as exc:
            raise UnprocessableError(f"template {template_id!r} has an unreadable schema: {exc}") from exc
        if not isinstance(schema, dict) or schema.get("type") != "object":
            raise UnprocessableError(
                f'template {template_id!r}: the schema\'s root must be an object ("type": "object")'
            )
        return Template(
            template_id=template_id,
            name=str(schema.get("title", template_id)),
            description=str(schema.get("description", "")),
            schema=schema,
            schema_path=schema_path,
            prompt_path=prompt_path,
            prompt=prompt,
            schema_sha256=hashlib.sha256(schema_bytes).hexdigest(),
        )

    def all(self) -> list[Template]:
        """Every usable template, by id; a broken one is logged and left out."""
        templates = []
        for template_id in self.ids():
            try:
                templates.append(self.get(template_id))
            except UnprocessableError as exc:
                log.warning("template.unusable", template_id=template_id, error=exc.detail)
        return templates
