"""Chat templates shipped in ``assets/chat-templates/`` or given as a file.

``MAIE_LLM_CHAT_TEMPLATE`` is either the name of a shipped template (``qwen3_nonthinking``: Qwen3's
ChatML with the thinking block always closed, so the model answers at once) or a path to a Jinja
file. Unset, vLLM uses the template in the model's tokenizer config.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import msgspec

from maie.errors import ConfigError

__all__ = ["ChatTemplate", "default_assets_dir", "resolve_chat_template", "shipped_chat_templates"]

#: Names of shipped templates are file stems of this form.
_NAME = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,63}$")


def default_assets_dir() -> Path:
    """Assets shipped with MAIE: inside an installed wheel, else the repository's ``assets/``."""
    packaged = Path(__file__).resolve().parents[2] / "_data" / "assets"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parents[3] / "assets"


class ChatTemplate(msgspec.Struct, frozen=True, kw_only=True):
    """A chat template's text and how results name it."""

    #: ``<name> (sha256 <12 hex>)`` for a shipped one, ``<path> (sha256 ...)`` for a file.
    label: str
    text: str


def shipped_chat_templates(assets_dir: Path | None = None) -> list[str]:
    """Names of the shipped chat templates."""
    folder = (assets_dir or default_assets_dir()) / "chat-templates"
    return sorted(p.stem for p in folder.glob("*.jinja")) if folder.is_dir() else []


def resolve_chat_template(spec: str | None, assets_dir: Path | None = None) -> ChatTemplate | None:
    """The template ``MAIE_LLM_CHAT_TEMPLATE`` names, or ``None`` for the model's own.

    Raises:
        ConfigError: if ``spec`` is neither a shipped name nor a readable file.
    """
    if not spec:
        return None
    folder = (assets_dir or default_assets_dir()) / "chat-templates"
    if _NAME.match(spec) and (folder / f"{spec}.jinja").is_file():
        path, name = folder / f"{spec}.jinja", spec
    else:
        path, name = Path(spec).expanduser(), spec
    try:
        data = path.read_bytes()
    except OSError as exc:
        known = ", ".join(shipped_chat_templates(assets_dir)) or "none"
        raise ConfigError(
            f"MAIE_LLM_CHAT_TEMPLATE={spec!r} is neither a shipped chat template ({known}) "
            f"nor a readable file ({exc})"
        ) from exc
    digest = hashlib.sha256(data).hexdigest()
    return ChatTemplate(label=f"{name} (sha256 {digest[:12]})", text=data.decode("utf-8"))
