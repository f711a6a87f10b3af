"""MkDocs hook (mkdocs.yml `hooks:`): docstrings cross-reference in Sphinx style.

The API reference renders docstrings as Markdown, where ``:class:`~facta.Relay``` would show
the role literally. Each role becomes plain code: its target, or its last part for ``~``.
"""

from __future__ import annotations

import re
from typing import Any

_ROLE = re.compile(r":(?:class|func|meth|mod|attr|exc|data|obj):<code>(~?)([^<]+)</code>")


def _plain(match: re.Match[str]) -> str:
    short, target = match.group(1), match.group(2)
    return f"<code>{target.rsplit('.', 1)[-1] if short else target}</code>"


def on_page_content(html: str, **_: Any) -> str:
    """Turn every Sphinx role left in the page's HTML into a code span."""
    return _ROLE.sub(_plain, html)
