"""Masking of secrets in audit payloads.

Hand-written because it is product policy, not a solved problem: what counts
as a secret here is "a key that names a password, secret, token, key or
credential" and "the password part of any URL or libpq connection string",
wherever it sits in the payload (nested dicts and lists included).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

MASK = "********"

_SECRET_KEY = re.compile(
    r"pass(word|wd|phrase)|(^|[^a-z])pwd($|[^a-z])|secret|token|api[-_]?key|private[-_]?key"
    r"|credential|authori[sz]ation|cookie|session[-_]?id|signature|(^|[-_])dsn$",
    re.IGNORECASE,
)
# scheme://user:password@host -> scheme://user:********@host
_URL_PASSWORD = re.compile(
    r"(?P<head>[a-z][a-z0-9+.\-]*://[^:/?#@\s]*:)(?P<secret>[^@/\s]*)(?=@)", re.IGNORECASE
)
# libpq key/value strings: "host=db password=hunter2"
_CONNINFO_PASSWORD = re.compile(r"(?P<head>\bpassword\s*=\s*)(?P<secret>'[^']*'|\S+)", re.I)


def is_secret_key(key: str) -> bool:
    """Say whether a payload key names something that must never be stored."""
    return bool(_SECRET_KEY.search(key))


def mask_text(text: str) -> str:
    """Replace the password of every URL or conninfo string inside ``text``."""
    text = _URL_PASSWORD.sub(lambda m: m.group("head") + MASK, text)
    return _CONNINFO_PASSWORD.sub(lambda m: m.group("head") + MASK, text)


def mask_payload(value: Any) -> Any:
    """Return a JSON-ready copy of ``value`` with secrets masked.

    Mappings keep their keys (as strings) but the value of a secret-looking key
    becomes ``MASK``; strings have URL/conninfo passwords masked; tuples and
    sets become lists; anything not JSON-native (dates, UUIDs, Decimals, ...)
    is stored as its ``str()``; NUL characters are dropped (PostgreSQL's jsonb
    refuses them).
    """
    if isinstance(value, Mapping):
        masked: dict[str, Any] = {}
        for key, item in value.items():
            name = str(key)
            secret = is_secret_key(name) and item not in (None, "")
            masked[name] = MASK if secret else mask_payload(item)
        return masked
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value, key=str) if isinstance(value, set | frozenset) else value
        return [mask_payload(item) for item in items]
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    return mask_text(str(value).replace("\x00", ""))
