"""Template helpers of the environment pages: SQL/Python highlighting with Pygments."""

from __future__ import annotations

from django import template
from django.utils.safestring import SafeString, mark_safe
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import PostgresLexer, PythonLexer, SqlLexer

register = template.Library()
_FORMATTER = HtmlFormatter(cssclass="highlight")


@register.filter
def highlight_sql(sql: str, dialect: str = "postgresql") -> SafeString:
    """SQL as highlighted HTML (Pygments escapes the text)."""
    lexer = PostgresLexer() if dialect == "postgresql" else SqlLexer()
    return mark_safe(highlight(sql or "", lexer, _FORMATTER))  # noqa: S308


@register.filter
def highlight_python(code: str) -> SafeString:
    return mark_safe(highlight(code or "", PythonLexer(), _FORMATTER))  # noqa: S308


STATE_CLASSES = {
    "up_to_date": "ok",
    "pending": "warn",
    "unreachable": "danger",
    "no_version_table": "info",
    "unknown_revision": "danger",
    "unknown": "",
}


@register.filter
def state_class(state: str) -> str:
    return STATE_CLASSES.get(state, "")


@register.filter
def get_item(mapping: dict, key: str) -> object:
    return (mapping or {}).get(key, "")
