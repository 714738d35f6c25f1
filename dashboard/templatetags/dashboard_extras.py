"""Template helpers every page shares: one look for statuses, one format for dates.

``{% load dashboard_extras %}`` then:

- ``{% status_badge value %}`` — a request status or a run outcome as a
  badge, the same colour, symbol and words everywhere (lists, the overview's
  "last run", the control room, the request page). Unknown values are shown
  as they are, in the neutral colour. ``element_id`` sets the badge's id.
- ``{{ moment|when }}`` — ``2026-12-04 14:03 CET``: the local time of
  ``settings.TIME_ZONE`` with its zone, in a ``<time>`` element;
  ``{{ moment|when:"ago" }}`` adds the relative time after it. ``—`` for none.

The labels repeat the ``choices`` of ``MigrationRequest.Status`` and
``Run.Outcome`` (a test keeps them equal) so this module imports no app: the
environment pages, which sit below approvals, use it too.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django import template
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe
from django.utils.timesince import timesince

register = template.Library()

# value -> (words, tone). Tones are CSS classes (dashboard.css): ok = done
# well, danger = went wrong, warn = needs someone, info = moving, muted =
# ended without running. dashboard.css adds a symbol per value (::before, so
# the badge's text is the words alone) for readers who do not see colours.
STATUS_STYLES: dict[str, tuple[str, str]] = {
    "pending": ("Waiting for approval", "warn"),
    "approved": ("Approved, queued", "info"),
    "running": ("Running", "info"),
    "unknown": ("Outcome unknown", "warn"),
    "succeeded": ("Succeeded", "ok"),
    "failed": ("Failed", "danger"),
    "interrupted": ("Interrupted", "danger"),
    "cancelled": ("Cancelled", "muted"),
    "rejected": ("Rejected", "muted"),
    "stale": ("Stale", "muted"),
}


@register.inclusion_tag("dashboard/partials/status_badge.html")
def status_badge(value: Any, element_id: str = "") -> dict[str, str]:
    """The badge of a request status or run outcome (see the module docstring)."""
    key = str(value or "")
    words, tone = STATUS_STYLES.get(key, (key.replace("_", " ").capitalize(), ""))
    return {"value": key, "words": words, "tone": tone, "element_id": element_id}


def _as_datetime(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and value:
        return parse_datetime(value)
    return None


@register.filter(is_safe=True)
def when(value: Any, relative: str = "") -> SafeString | str:
    """``2026-12-04 14:03 CET`` in a ``<time>`` element; ``"ago"`` adds ``(5 minutes ago)``.

    Formatted with ``strftime`` rather than Django's ``date`` filter: the
    overview renders two per environment, 1,000 at 500 environments.
    """
    moment = _as_datetime(value)
    if moment is None:
        return "—"
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment, timezone.get_current_timezone())
    local = timezone.localtime(moment)
    text = f"{local:%Y-%m-%d %H:%M} {local.tzname() or ''}".rstrip()
    html = f'<time datetime="{local.isoformat(timespec="seconds")}">{escape(text)}</time>'
    if relative == "ago":
        html += f' <span class="dash-ago">({escape(timesince(moment))} ago)</span>'
    return mark_safe(html)  # noqa: S308 - built from a datetime, the text escaped
