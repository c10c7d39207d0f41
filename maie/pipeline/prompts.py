"""Summary templates, each a JSON Schema and a prompt.

``templates/<id>.json`` is the JSON Schema (with title and description) a summary must validate
against; ``templates/prompts/<id>.jinja`` is the prompt that asks for it.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import msgspec

from maie.errors import NotFoundError, UnprocessableError

__all__ = ["Template", "TemplateCatalog", "default_templates_dir"]

#: Template ids are file stems; this pattern keeps them from naming anything outside the folder.
TEMPLATE_ID = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,63}$")


def default_templates_dir() -> Path:
    """Templates shipped with MAIE: inside an installed wheel, else the repository's ``templates/``."""
    packaged = Path(__file__).resolve().parents[1] / "_data" / "templates"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parents[2] / "templates"


class Template(msgspec.Struct, frozen=True, kw_only=True):
    """One summary template."""

    template_id: str
    name: str
    description: str
    schema: dict[str, Any]
    schema_path: Path
    prompt_path: Path

    @property
    def schema_sha256(self) -> str:
        """sha256 of the schema file as stored."""
        return hashlib.sha256(self.schema_path.read_bytes()).hexdigest()

    @property
    def prompt_sha256(self) -> str:
        """sha256 of the prompt file as stored."""
        return hashlib.sha256(self.prompt_path.read_bytes()).hexdigest()


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
        """Load one template.

        Raises:
            NotFoundError: if there is no such template.
            UnprocessableError: if its schema file is not valid JSON.
        """
        if not TEMPLATE_ID.match(template_id) or template_id not in self.ids():
            raise NotFoundError(
                f"template {template_id!r} not found; known templates: {', '.join(self.ids())}"
            )
        schema_path = self.root / f"{template_id}.json"
        try:
            schema = json.loads(schema_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise UnprocessableError(f"template {template_id!r} has an unreadable schema: {exc}") from exc
        return Template(
            template_id=template_id,
            name=str(schema.get("title", template_id)),
            description=str(schema.get("description", "")),
            schema=schema,
            schema_path=schema_path,
            prompt_path=self.root / "prompts" / f"{template_id}.jinja",
        )

    def all(self) -> list[Template]:
        """Every template, by id."""
        return [self.get(template_id) for template_id in self.ids()]
