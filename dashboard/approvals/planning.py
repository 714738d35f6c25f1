"""Pin a plan for an environment: a thin adapter over ``dashboard.migrator`` (plan, sql, risk, status).

``plan_pin`` reads the environment's current heads live (with a connect
timeout), computes the ordered plan, renders its offline SQL for the target's
dialect, lints it, and hashes every revision file, env.py and the SQL, and
takes the environment's execution settings. It writes nothing. The
execution-time counterpart is ``dashboard.migrator.pinned.load_pinned_script``
(the files) and :func:`plan_sql` (the SQL rendered again from them).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alembic.config import Config
from alembic.script import ScriptDirectory
from django.conf import settings
from sqlalchemy.engine import make_url

from dashboard.environments.models import Environment, EnvironmentConfigError
from dashboard.migrator.pinned import env_py_sha256
from dashboard.migrator.plan import Plan, PlanError, compute_plan, render_plan_sql
from dashboard.migrator.risk import lint_plan
from dashboard.migrator.sql import RevisionSQL, SQLRenderError
from dashboard.migrator.status import NoVersionTable, TargetUnreachable, read_current_heads


class PlanRefused(Exception):
    """The plan cannot be pinned; the message says why, for people, without secrets."""


class TargetUnavailable(PlanRefused):
    """The environment's database cannot be reached (or its URL cannot be resolved) now."""


@dataclass
class PinnedPlan:
    direction: str
    target: str
    dialect: str
    from_heads: list[str]
    to_heads: list[str]
    steps: list[dict[str, str]]
    sql: str
    sql_sha256: str
    findings: list[dict[str, Any]] = field(default_factory=list)
    destructive: bool = False
    env_sha256: str = ""
    settings: dict[str, Any] = field(default_factory=dict)


def alembic_config() -> Config:
    """The Alembic project the dashboard shows and runs (``settings.ALEMBIC_CONFIG``)."""
    return Config(settings.ALEMBIC_CONFIG)


def script_directory() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def squawk_config_path() -> Path:
    return Path(settings.SQUAWK_CONFIG)


def version_table_schema(environment: Environment) -> str | None:
    return environment.version_table_schema or None


def environment_dialect(url: str) -> str:
    return make_url(url).get_backend_name()


def environment_heads(environment: Environment, *, url: str) -> list[str]:
    """Current heads, live; ``[]`` for a database with no version table yet."""
    try:
        heads = read_current_heads(
            url,
            version_table=environment.version_table,
            version_table_schema=version_table_schema(environment),
        )
    except NoVersionTable:
        return []
    except TargetUnreachable as exc:
        raise TargetUnavailable(f"environment {environment.slug} is unreachable: {exc}") from None
    return sorted(heads)


def plan_sql(
    script: ScriptDirectory, plan: Plan, *, dialect: str, environment: Environment
) -> list[RevisionSQL]:
    """The offline SQL of ``plan`` as a request pins it (and as a run re-renders it to compare).

    Raises ``SQLRenderError``.
    """
    return render_plan_sql(
        script,
        plan,
        dialect=dialect,
        version_table=environment.version_table,
        version_table_schema=version_table_schema(environment),
        transaction_per_migration=environment.transaction_per_migration,
    )


def sql_sha256(parts: list[RevisionSQL]) -> str:
    return hashlib.sha256("".join(part.sql for part in parts).encode()).hexdigest()


def plan_pin(*, environment: Environment, direction: str, target: str) -> PinnedPlan:
    """Compute everything a request pins. Raises :class:`PlanRefused` with the reason."""
    try:
        url = environment.database_url()
    except EnvironmentConfigError as exc:
        raise TargetUnavailable(f"environment {environment.slug} is unreachable: {exc}") from None
    heads = environment_heads(environment, url=url)
    return plan_pin_at(
        environment=environment, url=url, heads=heads, direction=direction, target=target
    )


def plan_pin_at(
    *, environment: Environment, url: str, heads: list[str], direction: str, target: str
) -> PinnedPlan:
    """:func:`plan_pin` from ``heads`` known already (a fleet pins one plan per head set)."""
    script = script_directory()
    try:
        plan = compute_plan(script, current_heads=heads, target=target, direction=direction)  # type: ignore[arg-type]
    except PlanError as exc:
        raise PlanRefused(f"target {target!r} does not exist or cannot be reached: {exc}") from None
    if plan.is_empty:
        raise PlanRefused(
            f"nothing to do: {environment.slug} is already at {target!r} ({', '.join(heads) or 'base'})"
        )
    dialect = environment_dialect(url)
    try:
        parts = plan_sql(script, plan, dialect=dialect, environment=environment)
    except SQLRenderError as exc:
        raise PlanRefused(f"the plan's SQL cannot be rendered: {exc}") from None
    sql_by_rev = {part.revision: part.sql for part in parts}
    sql = "".join(part.sql for part in parts)
    try:
        # squawk only knows PostgreSQL, and SQLite's batch mode renders a column
        # change as copy-and-drop: lint the PostgreSQL rendering, as the
        # environment page does.
        lint_parts = (
            parts
            if dialect == "postgresql"
            else plan_sql(script, plan, dialect="postgresql", environment=environment)
        )
    except SQLRenderError:
        lint_parts = parts
    findings, destructive = _risk(lint_parts, script, environment)
    root = Path(script.dir)
    steps = [
        {
            "revision": step.revision,
            "message": step.message,
            "path": _relative(step.path, root),
            "sha256": step.sha256,
            "sql": sql_by_rev.get(step.revision, ""),
        }
        for step in plan.steps
    ]
    return PinnedPlan(
        direction=direction,
        target=target,
        dialect=dialect,
        from_heads=list(plan.from_heads),
        to_heads=sorted(plan.to_heads),
        steps=steps,
        sql=sql,
        sql_sha256=sql_sha256(parts),
        findings=findings,
        destructive=destructive,
        env_sha256=env_py_sha256(script),
        settings=environment.execution_settings(),
    )


def _relative(path: str, root: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(root.resolve()))
    except ValueError:
        return path


def _risk(
    parts: list[Any], script: ScriptDirectory, environment: Environment
) -> tuple[list[dict[str, Any]], bool]:
    """Findings to pin, and whether approvers must confirm the SQL (destructive or not linted)."""
    risks = lint_plan(
        parts,
        script=script,
        config_path=squawk_config_path(),
        version_table=environment.version_table,
    )
    findings = [
        {
            "revision": risk.revision,
            "badges": risk.badges,
            "summary": risk.summary,
            "lint_unavailable": risk.lint_unavailable,  # why squawk could not lint it ("" if it did)
            "lint": [
                {"rule": f.rule, "level": f.level, "message": f.message, "statement": f.statement}
                for f in risk.findings
            ],
        }
        for risk in risks
        if risk.badges or risk.findings
    ]
    return findings, any(risk.needs_care for risk in risks)


def target_choices() -> list[tuple[str, str]]:
    """(value, label) suggestions for the target picker: heads, branch heads, every revision."""
    script = script_directory()
    choices = [("heads", "all heads"), ("base", "base (downgrade everything)")]
    revisions = list(script.walk_revisions())
    labels = sorted({label for rev in revisions for label in rev.branch_labels})
    choices += [(f"{label}@head", f"head of branch {label}") for label in labels]
    choices += [(rev.revision, (rev.doc or "").strip()) for rev in revisions]
    return choices
