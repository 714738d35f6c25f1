"""Strict readers for settings that come from environment variables.

Every helper returns the parsed value or raises ``ImproperlyConfigured`` with a
message that names the variable and says what was expected, so a malformed
value stops start-up instead of becoming a silent default (twelve-factor, as in
healthchecks' settings). An unset or empty variable yields the default.
"""

from __future__ import annotations

import os
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}


def _raw(name: str) -> str | None:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return None
    return value.strip()


def env_str(name: str, default: str | None = None, *, required: bool = False) -> str | None:
    value = _raw(name)
    if value is None:
        if required:
            raise ImproperlyConfigured(f"{name} must be set.")
        return default
    return value


def env_bool(name: str, default: bool) -> bool:
    value = _raw(name)
    if value is None:
        return default
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise ImproperlyConfigured(
        f"{name}={value!r} is not a boolean: use one of 1/0, true/false, yes/no, on/off."
    )


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    value = _raw(name)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r} is not an integer.")
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"{name}={number} is below the minimum of {minimum}.")
    return number


def env_list(name: str, default: list[str]) -> list[str]:
    value = _raw(name)
    if value is None:
        return list(default)
    items = [item.strip() for item in value.split(",")]
    if any(not item for item in items):
        raise ImproperlyConfigured(
            f"{name}={value!r} has an empty item: use a comma-separated list."
        )
    return items


def parse_duration(text: str) -> timedelta:
    """Parse ``"500ms"``, ``"2s"``, ``"5m"``, ``"24h"``, ``"7d"`` or bare seconds."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a duration like 500ms, 2s, 5m, 24h or 7d")
    amount, unit = match.groups()
    return timedelta(seconds=float(amount) * _DURATION_UNITS[unit])


def env_duration(name: str, default: timedelta) -> timedelta:
    value = _raw(name)
    if value is None:
        return default
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name}: {exc}.")


def env_path(name: str, default: Path) -> Path:
    value = _raw(name)
    return Path(value).expanduser() if value is not None else default


def env_database(name: str, default: str, *, conn_max_age: int = 0) -> dict[str, Any]:
    """Parse a database URL into Django's ``DATABASES`` entry.

    ``conn_max_age`` keeps connections open that long (with a health check
    before reuse). The message on error never repeats the URL: it may hold a
    password.
    """
    value = _raw(name) or default
    try:
        config = dj_database_url.parse(
            value, conn_max_age=conn_max_age, conn_health_checks=conn_max_age > 0
        )
    except Exception as exc:  # dj-database-url raises several types
        raise ImproperlyConfigured(
            f"{name} is not a database URL Django understands ({type(exc).__name__})."
        )
    if not config.get("ENGINE") or not config.get("NAME"):
        raise ImproperlyConfigured(
            f"{name} is not a database URL Django understands (no engine or name)."
        )
    return config
