"""Text from recordings and users can reach the page only as text: checked in the sources.

The browser test shows one hostile file name rendered harmlessly; this keeps every script and
template free of the ways HTML or script could be injected at all (the page's Trusted Types
policy would make an innerHTML assignment throw, so one would also fail in the browser).
"""

from __future__ import annotations

import re

import pytest

from maie.web import STATIC_DIR, TEMPLATES_DIR

SCRIPTS = sorted((STATIC_DIR / "js").glob("*.js"))
TEMPLATES = sorted(TEMPLATES_DIR.glob("*.html"))
#: What would parse a string as HTML or run it as code.
UNSAFE_JS = re.compile(
    r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function|createContextualFragment"
    r"|setTimeout\(\s*[\"'`]|DOMParser|srcdoc"
)


def test_there_are_scripts_and_templates():
    assert len(SCRIPTS) >= 5
    assert len(TEMPLATES) >= 5


def code_of(path):
    """A script without its comment lines (which may name what the code avoids)."""
    return "\n".join(line for line in path.read_text().splitlines() if not line.lstrip().startswith("//"))


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: p.name)
def test_scripts_never_parse_strings_as_html(path):
    assert not UNSAFE_JS.findall(code_of(path))


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: p.name)
def test_scripts_never_log_and_never_put_the_key_in_a_url(path):
    code = code_of(path)
    assert "console." not in code
    assert not re.search(r"[?&](api_?key|key)=", code, re.IGNORECASE)


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.name)
def test_templates_have_no_inline_script_handlers_or_unescaped_output(path):
    html = path.read_text()
    assert not re.search(r"<script(?![^>]*\bsrc=)", html), "inline <script> (the CSP refuses it)"
    assert not re.search(r"\son[a-z]+\s*=", html, re.IGNORECASE), "inline event handler"
    assert not re.search(r"\bstyle\s*=", html), "inline style (the CSP refuses it)"
    assert "|safe" not in html
    assert "autoescape false" not in html
    assert "javascript:" not in html
