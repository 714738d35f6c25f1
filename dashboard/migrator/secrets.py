"""Where a target database URL comes from, and how it may be shown.

Contract: a URL is resolved at call time from the name of an environment
variable or from a file (container secrets), is never cached here, and the
only form that may leave the process (pages, logs, audit, Celery messages) is
``mask_url(...)``: the URL without its password at all (not even ``***``).
Parsing uses SQLAlchemy's ``make_url`` rather than hand-written code.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

__all__ = ["SecretError", "mask_url", "resolve_database_url", "scrub_secret"]

_SECRET_QUERY_KEYS = frozenset({"password", "sslpassword", "passfile", "pass"})


class SecretError(Exception):
    """The URL source is missing, unreadable or empty; the message never holds the URL."""


def resolve_database_url(
    *, url_env: str = "", url_file: str = "", environ: Mapping[str, str] | None = None
) -> str:
    """Return the database URL named by ``url_env`` (preferred) or stored in ``url_file``.

    Raises ``SecretError`` with a readable, secret-free reason when neither
    source yields a non-empty, parseable URL.
    """
    env = os.environ if environ is None else environ
    if url_env:
        value = env.get(url_env, "").strip()
        if not value:
            raise SecretError(f"environment variable {url_env} is not set")
    elif url_file:
        try:
            value = Path(url_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise SecretError(f"cannot read URL file {url_file}: {exc.strerror}") from None
        if not value:
            raise SecretError(f"URL file {url_file} is empty")
    else:
        raise SecretError("no URL source configured (set url_env or url_file)")
    try:
        make_url(value)
    except ArgumentError:
        raise SecretError("the configured value is not a database URL") from None
    return value


def mask_url(url: str) -> str:
    """Return ``url`` without any password, e.g. ``postgresql://magnetiq@db-prod:5432/magnetiq``.

    Password-like query parameters are dropped too. An unparseable value is
    shown as ``<invalid URL>`` so that nothing of it leaks.
    """
    try:
        parsed = make_url(url)
    except ArgumentError:
        return "<invalid URL>"
    query = {k: v for k, v in parsed.query.items() if k.lower() not in _SECRET_QUERY_KEYS}
    # URL.set(password=None) means "unchanged" in SQLAlchemy: build a new URL instead.
    bare = URL.create(
        drivername=parsed.drivername,
        username=parsed.username,
        password=None,
        host=parsed.host,
        port=parsed.port,
        database=parsed.database,
        query=query,
    )
    return bare.render_as_string(hide_password=False)


def scrub_secret(text: str, url: str) -> str:
    """Remove ``url`` and its password from ``text`` (a driver error message, a log line)."""
    if not url:
        return text
    text = text.replace(url, mask_url(url))
    try:
        password = make_url(url).password
    except ArgumentError:
        return text
    if password:
        text = text.replace(str(password), "")
    return text
