"""Markdown output that text from a checkpoint or a data file cannot break out of.

Strings that come from outside the program (a checkpoint's ``dataset`` or ``model`` field, file and
folder names, messages quoting them) are rendered as literal text: HTML special characters become
entities and Markdown punctuation is backslash-escaped, so ``<img onerror=...>`` stays visible text
and ``a|b`` does not split a table cell. Used by the report and by ``robust-eval compare``.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["escape_tree", "md_table", "md_text"]

# what can start markup mid-line: code, emphasis, links/images, table cells, escapes; an underscore
# inside a word (gaussian_noise) cannot, and is left as it is for readable raw Markdown
_PUNCTUATION = re.compile(r"([\\`*\[\]|~]|(?<!\w)_|_(?!\w))")


def md_text(value: Any) -> str:
    """``value`` as literal Markdown text on one line (HTML entities, escaped punctuation)."""
    text = " ".join(str(value).split())
    return _PUNCTUATION.sub(r"\\\1", html.escape(text, quote=False))


def escape_tree(value: Any) -> Any:
    """A copy of a JSON-like tree with every string (values and keys) passed through :func:`md_text`."""
    if isinstance(value, str):
        return md_text(value)
    if isinstance(value, Mapping):
        return {escape_tree(k) if isinstance(k, str) else k: escape_tree(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [escape_tree(v) for v in value]
    return value


def md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub-flavoured Markdown table (cells are used as given: escape untrusted ones first)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)
