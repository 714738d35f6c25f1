"""Environments declared in a TOML file (``load_environments``), for teams that keep config in git.

Format (one table per environment, keyed by slug)::

    [environments.staging]
    name = "Staging"
    position = 2
    url_env = "MAGNETIQ_STAGING_URL"   # or: url_file = "/run/secrets/staging_url"
    version_table = "alembic_version"  # optional
    lock_timeout = "2s"                # optional; also statement_timeout, lock_wait
    run_timeout = "30m"                # optional; default: statement_timeout x revisions + lock_wait
    idle_in_transaction_timeout = "1m" # optional
    required_approvals = 1
    approver_group = "Tech leads"
    approval_ttl = "24h"               # optional

Contract: ``environments_load`` validates the whole file first (a malformed
file changes nothing and the error names the line and the problem), then
creates or updates by slug in one transaction, deletes only with
``prune=True``, and writes one ``dashboard.environment.changed`` audit event
per created, updated or deleted environment. A created environment's first
status read is queued after the commit. Parsing is ``tomllib``'s.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import transaction

from dashboard.env import parse_duration
from dashboard.environments.dispatch import environment_refresh_enqueue
from dashboard.environments.models import Environment

AUDIT_ACTION = "dashboard.environment.changed"

_SLUG = re.compile(r"^[-a-zA-Z0-9_]+$")
_STRINGS = ("name", "description", "url_env", "url_file", "version_table", "version_table_schema")
_DURATIONS = (
    "lock_timeout",
    "statement_timeout",
    "lock_wait",
    "run_timeout",
    "idle_in_transaction_timeout",
    "approval_ttl",
)
_INTS = ("position", "required_approvals")
_BOOLS = ("transaction_per_migration",)
_KNOWN = {*_STRINGS, *_DURATIONS, *_INTS, *_BOOLS, "approver_group"}
_REQUIRED = ("name",)


class EnvironmentFileError(Exception):
    """The file is malformed; ``str()`` says where (line) and what is wrong."""


@dataclass
class LoadResult:
    created: list[str] = field(default_factory=list)
    updated: dict[str, list[str]] = field(default_factory=dict)
    unchanged: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"created {slug}" for slug in self.created]
        out += [f"updated {slug}: {', '.join(fields)}" for slug, fields in self.updated.items()]
        out += [f"unchanged {slug}" for slug in self.unchanged]
        out += [f"deleted {slug}" for slug in self.deleted]
        return out


def _line_of(text: str, slug: str | None, key: str | None) -> int:
    """Best line number for ``[environments.<slug>]`` / its ``key`` (1-based; 1 if unknown)."""
    lines = text.splitlines()
    start = 0
    if slug is not None:
        header = re.compile(rf"^\s*\[\s*environments\s*\.\s*\"?{re.escape(slug)}\"?\s*\]")
        start = next((i for i, line in enumerate(lines) if header.match(line)), 0)
        if key is None:
            return start + 1
    if key is not None:
        pattern = re.compile(rf"^\s*\"?{re.escape(key)}\"?\s*=")
        for i in range(start, len(lines)):
            if i > start and lines[i].lstrip().startswith("["):
                break
            if pattern.match(lines[i]):
                return i + 1
    return start + 1


def _fail(text: str, path: str, slug: str | None, key: str | None, problem: str) -> None:
    where = f"environments.{slug}" + (f".{key}" if key else "") if slug else "file"
    line = _line_of(text, slug, key)
    raise EnvironmentFileError(f"{path}, line {line}: {where}: {problem}")


def _value(text: str, path: str, slug: str, key: str, raw: Any) -> Any:
    if key in _STRINGS:
        if not isinstance(raw, str):
            _fail(text, path, slug, key, "must be a string")
        return raw.strip()
    if key in _INTS:
        if not isinstance(raw, int) or isinstance(raw, bool) or raw < 0:
            _fail(text, path, slug, key, "must be a whole number ≥ 0")
        return raw
    if key in _BOOLS:
        if not isinstance(raw, bool):
            _fail(text, path, slug, key, "must be true or false")
        return raw
    if key in _DURATIONS:
        if isinstance(raw, int | float) and not isinstance(raw, bool):
            return timedelta(seconds=raw)
        try:
            return parse_duration(str(raw))
        except ValueError as exc:
            _fail(text, path, slug, key, str(exc))
    if key == "approver_group":
        if not isinstance(raw, str):
            _fail(text, path, slug, key, "must be the name of a group")
        group = Group.objects.filter(name=raw).first()
        if group is None:
            _fail(text, path, slug, key, f"no group named {raw!r}")
        return group
    return raw


def parse_environments(text: str, *, path: str = "<file>") -> dict[str, dict[str, Any]]:
    """Validate the whole file; return field values per slug. Raises ``EnvironmentFileError``."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = getattr(exc, "lineno", None)
        message = getattr(exc, "msg", str(exc))
        raise EnvironmentFileError(f"{path}, line {line or '?'}: not valid TOML: {message}")
    tables = data.get("environments")
    if not isinstance(tables, dict) or not tables:
        _fail(text, path, None, None, "no [environments.<slug>] tables found")
    extra = sorted(set(data) - {"environments"})
    if extra:
        _fail(text, path, None, extra[0], f"unknown top-level key {extra[0]!r}")
    parsed: dict[str, dict[str, Any]] = {}
    for slug, table in tables.items():
        if not isinstance(table, dict):
            _fail(text, path, None, slug, "must be a table [environments.<slug>]")
        if not _SLUG.match(slug) or len(slug) > 50:
            _fail(text, path, slug, None, "slug may only contain letters, digits, - and _")
        unknown = sorted(set(table) - _KNOWN)
        if unknown:
            _fail(text, path, slug, unknown[0], f"unknown key {unknown[0]!r}")
        for key in _REQUIRED:
            if key not in table:
                _fail(text, path, slug, None, f"missing required key {key!r}")
        if bool(table.get("url_env")) == bool(table.get("url_file")):
            _fail(text, path, slug, None, "set exactly one of url_env and url_file")
        values = {key: _value(text, path, slug, key, raw) for key, raw in table.items()}
        values.setdefault("approver_group", None)
        values.setdefault("url_env", "")
        values.setdefault("url_file", "")
        parsed[slug] = values
    return parsed


def _audit(environment: Environment, *, actor: Any, payload: dict[str, Any]) -> None:
    from dashboard.audit.services import audit_record

    audit_record(action=AUDIT_ACTION, actor=actor, environment=environment, payload=payload)


def _validate(environment: Environment) -> None:
    try:
        environment.full_clean()
    except ValidationError as exc:
        exc.slug = environment.slug  # type: ignore[attr-defined]
        raise


def _comparable(value: Any) -> Any:
    return value.pk if isinstance(value, Group) else value


def environments_load(*, path: str | Path, prune: bool = False, actor: Any = None) -> LoadResult:
    """Create or update environments from the TOML file at ``path`` (see module docstring)."""
    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as exc:
        raise EnvironmentFileError(f"{path}: cannot read: {exc.strerror}") from None
    parsed = parse_environments(text, path=str(path))
    try:
        return _apply(parsed, prune=prune, actor=actor)
    except ValidationError as exc:
        slug = getattr(exc, "slug", None)
        problems = "; ".join(exc.messages)
        _fail(text, str(path), slug, None, problems)
        raise  # unreachable: _fail raises


def _apply(parsed: dict[str, dict[str, Any]], *, prune: bool, actor: Any) -> LoadResult:
    result = LoadResult()
    with transaction.atomic():
        for slug, values in parsed.items():
            env = Environment.objects.select_for_update().filter(slug=slug).first()
            if env is None:
                env = Environment(slug=slug, **values)
                _validate(env)
                env.save()
                result.created.append(slug)
                payload = {"via": "load_environments", "created": True, "fields": sorted(values)}
                _audit(env, actor=actor, payload=payload)
                # Its first status read, once the row is committed (a page
                # showing "Not read yet" until the next minute helps nobody).
                transaction.on_commit(partial(environment_refresh_enqueue, environment_id=env.pk))
                continue
            changed = [
                key
                for key, value in values.items()
                if _comparable(getattr(env, key)) != _comparable(value)
            ]
            if not changed:
                result.unchanged.append(slug)
                continue
            before = {key: str(_comparable(getattr(env, key))) for key in changed}
            for key in changed:
                setattr(env, key, values[key])
            _validate(env)
            env.save()
            result.updated[slug] = changed
            values_changed = {key: [before[key], str(_comparable(values[key]))] for key in changed}
            _audit(
                env, actor=actor, payload={"via": "load_environments", "changed": values_changed}
            )
        if prune:
            for env in Environment.objects.exclude(slug__in=list(parsed)):
                _audit(env, actor=actor, payload={"via": "load_environments", "deleted": True})
                result.deleted.append(env.slug)
                env.delete()
    return result
