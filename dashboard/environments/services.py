"""Environment services: read status, check drift, compute and render plans.

Contract: every function takes keyword-only arguments, resolves a database URL
only for the duration of the call (never stores, logs or returns it) and
turns target problems into states on the ``Environment`` row instead of
raising. Status refreshes write only the cached status fields; configuration
changes (admin, ``load_environments``) are audited where they happen.
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from alembic.script import ScriptDirectory
from django.conf import settings
from django.core.cache import cache
from django.db.models import Q
from django.utils import timezone
from sqlalchemy.engine import make_url

from dashboard.environments.dispatch import environment_refresh_enqueue
from dashboard.environments.models import Environment, EnvironmentConfigError
from dashboard.environments.risk_summary import (
    PlanRiskSummary,
    findings_from_risks,
    plan_risk_summary,
)
from dashboard.environments.signals import status_refreshed
from dashboard.migrator.drift import TargetUnreachable, draft_revision_file, drift_compare
from dashboard.migrator.plan import Plan, PlanError, compute_plan, render_plan_sql
from dashboard.migrator.risk import LintError, RevisionRisk, lint_plan
from dashboard.migrator.secrets import mask_url
from dashboard.migrator.sql import RevisionSQL, SQLRenderError
from dashboard.migrator.status import (
    EnvironmentState,
    EnvironmentStatus,
    status_from_heads,
    status_read,
)

logger = logging.getLogger(__name__)

Direction = Literal["upgrade", "downgrade"]


class HistoryUnavailable(Exception):
    """The Alembic project named by ``settings.ALEMBIC_CONFIG`` cannot be loaded."""


def alembic_script() -> ScriptDirectory:
    """The ScriptDirectory of ``settings.ALEMBIC_CONFIG`` (cached while its files are unchanged)."""
    from dashboard.migrator.graph import load_revision_graph

    graph = load_revision_graph(config_path=settings.ALEMBIC_CONFIG)
    script = graph.script_directory()
    if script is None:
        problems = "; ".join(str(error) for error in graph.errors) or "unknown error"
        raise HistoryUnavailable(f"the revision history cannot be loaded: {problems}")
    return script


def status_timeout() -> float:
    return float(getattr(settings, "ENVIRONMENTS_STATUS_TIMEOUT", 3.0))


def _drift_metadata() -> Any:
    dotted = getattr(settings, "ENVIRONMENTS_DRIFT_METADATA", "magnetiq_schema:metadata")
    module, _, attribute = dotted.partition(":")
    return getattr(importlib.import_module(module), attribute)


def _head_messages(script: ScriptDirectory, heads: Iterable[str]) -> dict[str, str]:
    messages = {}
    for head in heads:
        try:
            rev = script.get_revision(head)
        except Exception:  # unknown revision: no message to show
            rev = None
        messages[head] = (rev.doc or "").strip() if rev is not None else ""
    return messages


def _drift_is_fresh(
    environment: Environment, status: EnvironmentStatus, max_age: timedelta | None
) -> bool:
    drift = environment.drift or {}
    if max_age is None or not drift.get("checked_at"):
        return False
    if drift.get("heads") != list(status.current_heads) or drift.get("state") == "error":
        return False
    checked = datetime.fromisoformat(drift["checked_at"])
    return datetime.now(UTC) - checked < max_age


def drift_max_age() -> timedelta:
    """How long the periodic refresh trusts a drift comparison at unchanged heads."""
    return getattr(settings, "ENVIRONMENTS_DRIFT_MAX_AGE", timedelta(minutes=10))


def _drift_state(status: EnvironmentStatus, url: str) -> dict[str, Any] | None:
    """Drift at head only: compare live schema with the models; otherwise say why not."""
    now = datetime.now(UTC).isoformat()
    heads = list(status.current_heads)
    if status.state == EnvironmentState.UNREACHABLE:
        return None
    if status.state != EnvironmentState.UP_TO_DATE:
        return {"state": "not_at_head", "operations": None, "checked_at": now, "heads": heads}
    try:
        report = drift_compare(url, _drift_metadata(), connect_timeout=status_timeout())
    except TargetUnreachable as exc:
        return {"state": "error", "operations": None, "error": str(exc), "checked_at": now}
    return {
        "state": "drift" if report.has_drift else "clean",
        "operations": list(report.operations),
        "python": report.python,
        "python_downgrade": report.python_downgrade,
        "checked_at": now,
        "heads": heads,
    }


def drift_summary(drift: dict[str, Any] | None) -> tuple[str, int]:
    """(state, number of differences) of a drift comparison, for the overview's card."""
    if not drift:
        return "", 0
    return str(drift.get("state") or ""), len(drift.get("operations") or ())


def environment_last_run_record(
    *, environment_id: int, outcome: str, started_at: datetime | None, request_id: int
) -> None:
    """Keep the environment's latest run on its row (the overview reads no run table).

    Called by the approvals state machine in the transaction of the run's
    transition; a run older than the one recorded never overwrites it.
    """
    newer = Environment.objects.filter(pk=environment_id).filter(
        Q(last_run_request_id__isnull=True) | Q(last_run_request_id__lte=request_id)
    )
    newer.update(
        last_run_outcome=outcome, last_run_started_at=started_at, last_run_request_id=request_id
    )


def environment_status_refresh(
    *,
    environment: Environment,
    check_drift: bool = True,
    drift_max_age: timedelta | None = None,
) -> Environment:
    """Read the environment's database now and store the status on its row.

    Never raises for target problems: unreachable databases, missing secrets
    and unknown revisions become states. Takes a few seconds at most
    (``settings.ENVIRONMENTS_STATUS_TIMEOUT`` per connection). Drift (the
    expensive part: schema reflection) is compared again unless the last
    comparison was at the same heads and is younger than ``drift_max_age``
    (``None``: always compare, as the page's refresh button does).

    A fleet's own row has no database (its targets do): passing one raises
    ``ValueError``; read its targets with ``fleet_targets_refresh``.
    """
    fields = _status_read_into(environment, check_drift=check_drift, drift_max_age=drift_max_age)
    environment.save(update_fields=fields)
    logger.info("environment %s status %s", environment.slug, environment.status_state)
    status_refreshed.send(sender=Environment, environment=environment)
    return environment


def _status_read_into(
    environment: Environment, *, check_drift: bool, drift_max_age: timedelta | None
) -> list[str]:
    """Read the target and set the status fields on ``environment``; return their names.

    Touches the target only, never the dashboard database (threads may call it).
    """
    if environment.is_fleet:
        raise ValueError(
            f"{environment.slug} is a fleet: it has no database of its own, read its targets"
        )
    detail: dict[str, Any] = {}
    drift: dict[str, Any] | None = None
    try:
        script = alembic_script()
        url = environment.database_url()
    except (EnvironmentConfigError, HistoryUnavailable) as exc:
        status = EnvironmentStatus(state=EnvironmentState.UNREACHABLE, error=str(exc))
    else:
        detail["dialect"] = make_url(url).get_backend_name()
        detail["masked_url"] = mask_url(url)
        status = status_read(
            script,
            url=url,
            version_table=environment.version_table,
            version_table_schema=environment.version_table_schema or None,
            connect_timeout=status_timeout(),
        )
        detail["head_messages"] = _head_messages(script, status.current_heads)
        detail["unknown_revisions"] = list(status.unknown_revisions)
        if check_drift and _drift_is_fresh(environment, status, drift_max_age):
            check_drift = False  # keep the stored comparison
        elif check_drift:
            drift = _drift_state(status, url)
    environment.status_state = status.state.value
    environment.current_heads = list(status.current_heads)
    environment.pending = list(status.pending)
    environment.status_error = status.error or ""
    environment.status_detail = detail
    fields = ["status_state", "current_heads", "pending", "status_error", "status_detail"]
    if check_drift:
        environment.drift = drift
        environment.drift_state, environment.drift_count = drift_summary(drift)
        fields += ["drift", "drift_state", "drift_count"]
    environment.status_refreshed_at = timezone.now()
    return [*fields, "status_refreshed_at"]


def environment_status_from_heads(*, environment: Environment, heads: Iterable[str]) -> Environment:
    """Store a status computed from heads read by someone else (a run that just ended).

    Touches no target and resolves no secret: the pages agree with the run at
    once; drift is left to the next full refresh (``environments.refresh``).
    """
    try:
        script = alembic_script()
    except HistoryUnavailable:
        return environment
    status = status_from_heads(script, tuple(sorted(heads)))
    detail = dict(environment.status_detail or {})
    detail["head_messages"] = _head_messages(script, status.current_heads)
    detail["unknown_revisions"] = list(status.unknown_revisions)
    environment.status_state = status.state.value
    environment.current_heads = list(status.current_heads)
    environment.pending = list(status.pending)
    environment.status_error = status.error or ""
    environment.status_detail = detail
    environment.status_refreshed_at = timezone.now()
    environment.save(
        update_fields=[
            "status_state",
            "current_heads",
            "pending",
            "status_error",
            "status_detail",
            "status_refreshed_at",
        ]
    )
    status_refreshed.send(sender=Environment, environment=environment)
    return environment


def environments_refresh_all(
    *, environments: Iterable[Environment] | None = None, workers: int = 8
) -> list[Environment]:
    """Refresh several environments concurrently in this process (the CLI's ``--refresh``).

    Celery fans out one task per environment instead (see ``tasks.py``). A
    fleet's own row is skipped (it has no database): pass its targets, or
    read a whole fleet with ``fleet_targets_refresh``.
    """
    source = (
        environments
        if environments is not None
        else Environment.objects.readable().filter(retired_at__isnull=True)
    )
    rows = [env for env in source if not env.is_fleet]
    if not rows:
        return []

    def one(env: Environment) -> Environment:
        from django.db import connection

        try:
            return environment_status_refresh(environment=env)
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(rows)))) as pool:
        return list(pool.map(one, rows))


# --- fleets -------------------------------------------------------------------

# Targets written per UPDATE by a fleet refresh (bulk_update's CASE grows with it).
FLEET_WRITE_BATCH = 500


def fleet_targets_refresh(*, fleets: Iterable[Environment], workers: int = 8) -> list[Environment]:
    """Read every current target of ``fleets`` now, in threads; store the results in bulk.

    For ``environment_status --refresh``. The threads only read the targets
    (never the dashboard database); the statuses are then written with one
    UPDATE per ``FLEET_WRITE_BATCH`` targets, so the dashboard's queries do
    not grow with the fleet. Drift is compared again only when the last
    comparison is older than ``drift_max_age()`` or at other heads, as the
    workers' periodic read does. A target whose read fails unexpectedly keeps
    its previous status (logged). ``status_refreshed`` is sent only for the
    targets whose read can change something for its receivers (see
    ``_read_is_news``). Returns the targets of each fleet in rollout order.
    """
    fleet_ids = [fleet.pk for fleet in fleets if fleet.is_fleet]
    targets = list(
        Environment.objects.filter(fleet_id__in=fleet_ids, retired_at__isnull=True).order_by(
            "fleet_id", "fleet_position", "pk"
        )
    )
    if not targets:
        return []
    before = {env.pk: _read_key(env) for env in targets}
    max_age = drift_max_age()

    def read(env: Environment) -> tuple[Environment, tuple[str, ...] | None]:
        try:
            fields = _status_read_into(env, check_drift=True, drift_max_age=max_age)
        except Exception:
            logger.exception("status read of target %s failed", env.slug)
            return env, None
        return env, tuple(fields)

    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(targets)))) as pool:
        results = list(pool.map(read, targets))
    by_fields: dict[tuple[str, ...], list[Environment]] = {}
    for env, fields in results:
        if fields is not None:
            by_fields.setdefault(fields, []).append(env)
    for fields, rows in by_fields.items():  # two groups at most: drift compared or kept
        Environment.objects.bulk_update(rows, list(fields), batch_size=FLEET_WRITE_BATCH)
    for env, fields in results:
        if fields is not None and _read_is_news(before[env.pk], env):
            status_refreshed.send(sender=Environment, environment=env)
    logger.info("read %d targets of %d fleet(s)", len(targets), len(fleet_ids))
    return targets


def _read_key(environment: Environment) -> tuple[str, tuple[str, ...]]:
    return environment.status_state, tuple(sorted(environment.current_heads or ()))


def _read_is_news(before: tuple[str, tuple[str, ...]], environment: Environment) -> bool:
    """Whether ``status_refreshed`` has anything to act on after this target's read.

    Its receivers make pending requests stale when the heads moved and settle
    a run whose outcome is unknown from the heads read. A read that found no
    heads (unreachable), or the same state and heads as the previous one on a
    target whose last run is not unknown, gives them nothing new; a fleet of
    500 unchanged targets then costs no query per target.
    """
    if environment.status_state == Environment.StatusState.UNREACHABLE:
        return False
    return before != _read_key(environment) or environment.last_run_outcome == "unknown"


def fleet_refresh_enqueue(*, fleet: Environment) -> int:
    """Queue one status read per current target of ``fleet``; return how many were queued now.

    The workers read the targets in parallel and the pages read the cache.
    Each read goes through ``environment_refresh_enqueue`` (deduplicated on
    the target's row: a target whose read is already queued is not queued
    twice, and a broker error is logged, not raised).
    """
    ids = Environment.objects.targets_of(fleet).values_list("pk", flat=True)
    return sum(environment_refresh_enqueue(environment_id=pk) for pk in ids)


# --- plans ------------------------------------------------------------------


@dataclass
class RevisionPreview:
    """One step of a plan as the detail page shows it."""

    revision: str
    message: str
    is_merge: bool
    sql: str
    risk: RevisionRisk | None = None


@dataclass
class EnvironmentPlan:
    """A plan for an environment with its SQL (environment's dialect) and risk (PostgreSQL)."""

    target: str
    direction: Direction
    dialect: str
    plan: Plan | None = None
    revisions: list[RevisionPreview] = field(default_factory=list)
    error: str = ""
    lint_error: str = ""

    @property
    def sql(self) -> str:
        return "".join(item.sql for item in self.revisions)

    @property
    def linted_other_dialect(self) -> bool:
        return self.dialect != "postgresql"


def _dialect(environment: Environment) -> str:
    if environment.dialect:
        return environment.dialect
    try:
        return make_url(environment.database_url()).get_backend_name()
    except Exception:  # missing secret or bad URL: preview for PostgreSQL
        return "postgresql"


def environment_plan(
    *,
    environment: Environment,
    target: str = "heads",
    direction: Direction = "upgrade",
    with_risk: bool = True,
) -> EnvironmentPlan:
    """The plan from the environment's last-read heads to ``target``, with SQL and risk.

    Uses the cached status (refresh first for a live read). Problems (unknown
    target, unreadable status, a revision that fails offline) are returned in
    ``error``/``lint_error``, never raised.

    Rendering the SQL and running squawk costs 100-300 ms, and the result only
    depends on the inputs in the cache key below (the history's fingerprint
    changes when a revision file does; the heads when the status is read), so
    it is kept in Django's cache for ``PLAN_CACHE_SECONDS``.
    """
    dialect = _dialect(environment)  # may read the secret: once per call
    key = _plan_cache_key(environment, dialect, target, direction, with_risk)
    if key is not None:
        cached = cache.get(key)
        if cached is not None:
            return cached
    result = _environment_plan(
        environment=environment,
        dialect=dialect,
        target=target,
        direction=direction,
        with_risk=with_risk,
    )
    if key is not None and not result.error:
        cache.set(key, result, PLAN_CACHE_SECONDS)
    return result


PLAN_CACHE_SECONDS = 600


def _plan_cache_key(
    environment: Environment, dialect: str, target: str, direction: str, with_risk: bool
) -> str | None:
    from dashboard.migrator.graph import load_revision_graph

    graph = load_revision_graph(config_path=settings.ALEMBIC_CONFIG)
    if graph.errors:
        return None
    parts = [
        str(environment.pk),
        graph.fingerprint,
        ",".join(sorted(environment.current_heads or ())),
        environment.status_state,
        environment.version_table,
        environment.version_table_schema,
        dialect,
        target,
        direction,
        str(with_risk),
        str(_squawk_config_mtime()),
    ]
    digest = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()
    return f"environments:plan:{digest}"


def _squawk_config_path() -> Path:
    return Path(getattr(settings, "SQUAWK_CONFIG", settings.BASE_DIR / ".squawk.toml"))


def _squawk_config_mtime() -> float:
    try:
        return os.stat(_squawk_config_path()).st_mtime
    except OSError:
        return 0.0


def _environment_plan(
    *,
    environment: Environment,
    dialect: str,
    target: str,
    direction: Direction,
    with_risk: bool,
) -> EnvironmentPlan:
    result = EnvironmentPlan(target=target, direction=direction, dialect=dialect)
    if environment.status_state in (
        Environment.StatusState.UNREACHABLE,
        Environment.StatusState.UNKNOWN_REVISION,
        Environment.StatusState.UNKNOWN,
    ):
        result.error = "The current revision is not known; refresh the status first."
        return result
    try:
        script = alembic_script()
        plan = compute_plan(
            script,
            current_heads=tuple(environment.current_heads or ()),
            target=target,
            direction=direction,
        )
        table = {
            "version_table": environment.version_table,
            "version_table_schema": environment.version_table_schema or None,
        }
        sql = render_plan_sql(script, plan, dialect=dialect, **table)
    except (HistoryUnavailable, PlanError, SQLRenderError) as exc:
        result.error = str(exc)
        return result
    result.plan = plan
    risks: dict[str, RevisionRisk] = {}
    if with_risk and plan.steps:
        risks, result.lint_error = _risks(script, plan, dialect, sql, table)
    for step, item in zip(plan.steps, sql, strict=False):
        result.revisions.append(
            RevisionPreview(
                revision=step.revision,
                message=step.message,
                is_merge=step.is_merge,
                sql=item.sql,
                risk=risks.get(step.revision),
            )
        )
    return result


def _risks(
    script: ScriptDirectory,
    plan: Plan,
    dialect: str,
    sql: list[RevisionSQL],
    table: dict[str, Any],
) -> tuple[dict[str, RevisionRisk], str]:
    try:
        pg_sql = (
            sql
            if dialect == "postgresql"
            else render_plan_sql(script, plan, dialect="postgresql", **table)
        )
        config = _squawk_config_path()
        risks = lint_plan(
            pg_sql, script=script, config_path=config, version_table=table["version_table"]
        )
    except (LintError, SQLRenderError) as exc:
        return {}, str(exc)
    # squawk missing or timed out: the built-in findings are still there, and
    # every revision says it was not linted (and counts as needing care).
    unavailable = next((risk.lint_unavailable for risk in risks if risk.lint_unavailable), "")
    return {risk.revision: risk for risk in risks}, unavailable


def environment_plan_summary(
    *, environment: Environment, preview: EnvironmentPlan
) -> PlanRiskSummary:
    """The one-glance risk of ``preview`` (see ``risk_summary.py``), as a request would pin it."""
    summary = plan_risk_summary(
        findings=findings_from_risks(item.risk for item in preview.revisions),
        revision_count=len(preview.revisions),
        environment=environment,
        sql=preview.sql,
    )
    if preview.lint_error:
        summary.notes.append(f"Risk check failed: {preview.lint_error}")
    return summary


def environment_drift_draft(*, environment: Environment) -> str:
    """The draft revision file for the environment's last detected drift ('' when none)."""
    drift = environment.drift or {}
    if drift.get("state") != "drift":
        return ""
    from dashboard.migrator.drift import DriftReport

    report = DriftReport(
        operations=tuple(drift.get("operations") or ()),
        python=drift.get("python", ""),
        python_downgrade=drift.get("python_downgrade", ""),
    )
    return draft_revision_file(report=report, message=f"fix schema drift on {environment.slug}")
