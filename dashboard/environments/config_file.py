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

A fleet (docs/fleets.md) adds its targets and rollout policy; its URL source
holds a template containing ``{target}``::

    [environments.tenants]
    name = "Tenants"
    url_env = "MAGNETIQ_TENANT_URL"    # e.g. postgresql://app@db/tenant_{target}
    targets = ["acme", "globex"]       # or: targets_file = "tenants.txt" (one a line)
    waves = [1, "10%", "100%"]         # cumulative; wave 1 is the canary
    parallelism = 8                    # targets of a wave running at once
    halt_after_failures = 1            # failed targets in a wave that halt the rollout
    soak = "10m"                       # optional wait between waves
    gate_sql = "select true"           # optional health check on each migrated target

Each target becomes an environment ``<fleet>--<target>`` with the fleet's
settings. A target dropped from the list is deleted, or retired (kept for its
history, out of rollouts) when it has requests.

Contract: ``environments_load`` validates the whole file first (a malformed
file changes nothing and the error names the line and the problem), then
creates or updates by slug in one transaction, deletes only with
``prune=True``, and writes one ``dashboard.environment.changed`` audit event
per created, updated or deleted environment (a fleet and its targets: one
event, whatever changed in them). A created environment's first status read
is queued after the commit (a fleet's: each new target's). Parsing is
``tomllib``'s.
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
from dashboard.environments.fleet import (
    FleetSpecError,
    parse_targets_file,
    target_name_problem,
    validate_waves,
)
from dashboard.environments.models import TARGET_PLACEHOLDER, Environment, target_slug
from dashboard.migrator.secrets import SecretError, resolve_database_url

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
_FLEET_KEYS = {"targets", "targets_file", "waves", "parallelism", "halt_after_failures", "soak"}
_FLEET_KEYS |= {"gate_sql"}
_KNOWN = {*_STRINGS, *_DURATIONS, *_INTS, *_BOOLS, "approver_group", *_FLEET_KEYS}
# The fleet's settings each target takes (a target is run like a single environment).
TARGET_COPIES = (
    "url_env",
    "url_file",
    "version_table",
    "version_table_schema",
    *_DURATIONS,
    "transaction_per_migration",
    "required_approvals",
    "approver_group",
    "position",
)
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


def _fleet_values(
    text: str, path: str, slug: str, table: dict[str, Any], values: dict[str, Any]
) -> None:
    """Validate a fleet's keys into ``values`` (``targets`` becomes the list of names)."""
    has_list, has_file = "targets" in table, "targets_file" in table
    if not (has_list or has_file):
        key = next(iter(sorted(set(table) & _FLEET_KEYS)))
        _fail(text, path, slug, key, f"{key!r} is for fleets: add targets or targets_file")
    if has_list and has_file:
        _fail(text, path, slug, "targets_file", "set either targets or targets_file, not both")
    if has_list:
        names = table["targets"]
        if not isinstance(names, list) or not names:
            _fail(text, path, slug, "targets", "must be a non-empty list of target names")
        seen: set[str] = set()
        for name in names:
            problem = target_name_problem(name)
            if problem is None and name in seen:
                problem = f"target {name!r} is listed twice"
            if problem:
                _fail(text, path, slug, "targets", problem)
            seen.add(name)
        values["targets"] = list(names)
        values["targets_file"] = ""
    else:
        raw = table["targets_file"]
        if not isinstance(raw, str) or not raw.strip():
            _fail(text, path, slug, "targets_file", "must be the path of a file")
        target_path = Path(path).parent / raw.strip() if path != "<file>" else Path(raw.strip())
        try:
            names = parse_targets_file(
                target_path.read_text(encoding="utf-8"), path=str(target_path)
            )
        except OSError as exc:
            _fail(text, path, slug, "targets_file", f"cannot read {target_path}: {exc.strerror}")
        except FleetSpecError as exc:
            _fail(text, path, slug, "targets_file", str(exc))
        values["targets"] = names
        values["targets_file"] = raw.strip()
    too_long = [n for n in values["targets"] if len(target_slug(slug, n)) > 120]
    if too_long:
        _fail(
            text, path, slug, "targets", f"target {too_long[0]!r} makes a slug over 120 characters"
        )
    try:
        values["waves"] = validate_waves(table.get("waves", ["100%"]))
    except FleetSpecError as exc:
        _fail(text, path, slug, "waves", str(exc))
    for key, default in (("parallelism", 4), ("halt_after_failures", 1)):
        raw = table.get(key, default)
        if not isinstance(raw, int) or isinstance(raw, bool) or raw < 1:
            _fail(text, path, slug, key, "must be a whole number ≥ 1")
        values[key] = raw
    if "soak" in table:
        try:
            raw = table["soak"]
            values["soak"] = (
                timedelta(seconds=raw) if isinstance(raw, int | float) else parse_duration(str(raw))
            )
        except ValueError as exc:
            _fail(text, path, slug, "soak", str(exc))
    else:
        values["soak"] = None
    gate = table.get("gate_sql", "")
    if not isinstance(gate, str):
        _fail(text, path, slug, "gate_sql", "must be a string (a query returning true)")
    values["gate_sql"] = gate.strip()
    values["is_fleet"] = True
    _check_template(text, path, slug, values)


def _check_template(text: str, path: str, slug: str, values: dict[str, Any]) -> None:
    """A fleet's URL must be a template with ``{target}`` (checked when it can be read here)."""
    try:
        url = resolve_database_url(url_env=values["url_env"], url_file=values["url_file"])
    except SecretError:
        return  # not set in this process (set where the workers run): checked at run time
    if TARGET_PLACEHOLDER not in url:
        key = "url_env" if values["url_env"] else "url_file"
        _fail(
            text,
            path,
            slug,
            key,
            f"a fleet's URL must be a template containing {TARGET_PLACEHOLDER}"
            " (e.g. postgresql://app@db/tenant_{target})",
        )


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
        if "--" in slug:
            _fail(text, path, slug, None, "slug may not contain -- (it names a fleet's targets)")
        values = {
            key: _value(text, path, slug, key, raw)
            for key, raw in table.items()
            if key not in _FLEET_KEYS
        }
        values.setdefault("approver_group", None)
        values.setdefault("url_env", "")
        values.setdefault("url_file", "")
        if set(table) & _FLEET_KEYS:
            _fleet_values(text, path, slug, table, values)
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
            targets = values.pop("targets", None)
            values.setdefault("is_fleet", False)
            # A fleet's own change is audited together with its targets' (one event).
            change = _apply_one(slug, values, result=result, actor=actor, audit=targets is None)
            if targets is not None:
                fleet = Environment.objects.get(slug=slug)
                _sync_targets(fleet, targets, result=result, actor=actor, change=change)
        if prune:
            for env in Environment.objects.pipeline().exclude(slug__in=list(parsed)):
                _audit(env, actor=actor, payload={"via": "load_environments", "deleted": True})
                result.deleted.append(env.slug)
                env.delete()
    return result


def _sync_targets(
    fleet: Environment,
    names: list[str],
    *,
    result: LoadResult,
    actor: Any,
    change: dict[str, Any] | None,
) -> None:
    """Make the fleet's target rows match ``names`` (order = rollout order), in bulk.

    One audit event for the fleet: its own ``change`` (the payload
    ``_apply_one`` did not write, None if the fleet's row is unchanged) plus
    the targets added, removed or retired; the fleet's settings are copied
    onto every target.
    """
    copies = {key: getattr(fleet, key) for key in TARGET_COPIES}
    rows = Environment.objects.filter(fleet=fleet).select_related("approver_group")
    existing = {env.target_name: env for env in rows}
    added, changed_rows, new_rows = [], [], []
    for position, name in enumerate(names, start=1):
        env = existing.get(name)
        wanted = {**copies, "fleet_position": position, "retired_at": None, "name": name}
        if env is None:
            new_rows.append(
                Environment(
                    slug=target_slug(fleet.slug, name), fleet=fleet, target_name=name, **wanted
                )
            )
            added.append(name)
            continue
        if any(_comparable(getattr(env, k)) != _comparable(v) for k, v in wanted.items()):
            for key, value in wanted.items():
                setattr(env, key, value)
            changed_rows.append(env)
    clash = Environment.objects.filter(
        slug__in=[env.slug for env in new_rows], fleet__isnull=True
    ).first()
    if clash is not None:
        raise EnvironmentFileError(
            f"environment {clash.slug} exists and is not a target of {fleet.slug}; rename one"
        )
    Environment.objects.bulk_create(new_rows, batch_size=500)
    if changed_rows:
        fields = [*TARGET_COPIES, "fleet_position", "retired_at", "name"]
        Environment.objects.bulk_update(changed_rows, fields, batch_size=500)
    removed, retired = _remove_targets(fleet, [n for n in existing if n not in set(names)])
    if change is not None or added or removed or retired or changed_rows:
        payload: dict[str, Any] = change or {"via": "load_environments"}
        payload |= {"targets": len(names)}
        payload |= {"targets_added": added[:1000], "targets_removed": removed[:1000]}
        payload |= {"targets_retired": retired[:1000], "targets_updated": len(changed_rows)}
        _audit(fleet, actor=actor, payload=payload)
        if fleet.slug not in result.created:
            result.updated.setdefault(fleet.slug, []).append("targets")
    for env in Environment.objects.filter(fleet=fleet, target_name__in=added).only("pk"):
        transaction.on_commit(partial(environment_refresh_enqueue, environment_id=env.pk))


def _remove_targets(fleet: Environment, names: list[str]) -> tuple[list[str], list[str]]:
    """Delete targets without history; retire (keep, out of rollouts) those with requests."""
    from django.db.models import ProtectedError
    from django.db.models.functions import Now

    removed, retired = [], []
    for env in Environment.objects.filter(fleet=fleet, target_name__in=names):
        try:
            with transaction.atomic():
                env.delete()
            removed.append(env.target_name)
        except ProtectedError:
            if env.retired_at is None:
                Environment.objects.filter(pk=env.pk).update(retired_at=Now())
                retired.append(env.target_name)
    return removed, retired


def _apply_one(
    slug: str, values: dict[str, Any], *, result: LoadResult, actor: Any, audit: bool = True
) -> dict[str, Any] | None:
    """Create or update one environment row from its validated values.

    Returns the audit payload of the change (None if nothing changed), written
    here unless ``audit`` is false (a fleet: the caller writes it with its targets').
    """
    env = Environment.objects.select_for_update().filter(slug=slug).first()
    if env is None:
        env = Environment(slug=slug, **values)
        _validate(env)
        env.save()
        result.created.append(slug)
        payload = {"via": "load_environments", "created": True, "fields": sorted(values)}
        if audit:
            _audit(env, actor=actor, payload=payload)
        # Its first status read, once the row is committed (a page
        # showing "Not read yet" until the next minute helps nobody).
        if not env.is_fleet:
            transaction.on_commit(partial(environment_refresh_enqueue, environment_id=env.pk))
        return payload
    changed = [
        key for key, value in values.items() if _comparable(getattr(env, key)) != _comparable(value)
    ]
    if not changed:
        result.unchanged.append(slug)
        return None
    before = {key: str(_comparable(getattr(env, key))) for key in changed}
    for key in changed:
        setattr(env, key, values[key])
    _validate(env)
    env.save()
    result.updated[slug] = changed
    values_changed = {key: [before[key], str(_comparable(values[key]))] for key in changed}
    payload = {"via": "load_environments", "changed": values_changed}
    if audit:
        _audit(env, actor=actor, payload=payload)
    return payload
