"""Template helpers of the environment pages: SQL/Python highlighting (Pygments), fleet counts."""

from __future__ import annotations

from django import template
from django.utils.safestring import SafeString, mark_safe
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import PostgresLexer, PythonLexer, SqlLexer

from dashboard.environments.selectors import NO_HEADS, summary_counts

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


@register.filter
def fleet_counts(summary: object) -> list[tuple[str, str, int, str]]:
    """(state, label, targets, tone) of a fleet summary, for the overview card and the fleet page."""
    return summary_counts(summary) if summary is not None else []  # type: ignore[arg-type]


@register.filter
def join_heads(heads: object) -> str:
    """A head set as the fleet page's revision filter value (``a+b``)."""
    return "+".join(str(head) for head in heads or ()) or NO_HEADS  # type: ignore[attr-defined]


@register.filter
def truncate_middle(text: str, length: int = 80) -> str:
    """``text`` cut in the middle to ``length`` characters: errors keep their end ("does not exist")."""
    text = str(text or "")
    if len(text) <= length:
        return text
    head = (length - 1) // 3
    return f"{text[:head]}…{text[len(text) - (length - 1 - head) :]}"
