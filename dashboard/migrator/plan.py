"""Ordered migration plans between a database's current heads and a target.

The order is Alembic's own: plans come from ``ScriptDirectory._upgrade_revs`` /
``_downgrade_revs``, the functions ``alembic upgrade`` and ``alembic downgrade``
use, so a plan lists exactly the steps those commands would run, including a
start from several heads, ``label@head``, relative targets and ``depends_on``.

Public API (stable; the approvals issue pins plans with it)::

    compute_plan(script, *, current_heads, target, direction) -> Plan
    applied_revisions(script, heads) -> frozenset[str]   # ancestors incl. depends_on
    render_plan_sql(script, plan, *, dialect, version_table=..., version_table_schema=...)
        -> list[RevisionSQL]                             # see dashboard.migrator.sql
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from alembic.script import Script, ScriptDirectory
from alembic.script.revision import RevisionError
from alembic.util import CommandError

from dashboard.migrator.sql import RevisionSQL, render_sql

__all__ = [
    "Plan",
    "PlanError",
    "PlanStep",
    "applied_revisions",
    "compute_plan",
    "file_sha256",
    "render_plan_sql",
]

Direction = Literal["upgrade", "downgrade"]


class PlanError(Exception):
    """The target is unknown or not reachable in this direction; the message is for people."""


@dataclass(frozen=True)
class PlanStep:
    """One revision the plan runs, with what a reviewer needs to pin it."""

    revision: str
    down_revisions: tuple[str, ...]
    dependencies: tuple[str, ...]
    branch_labels: tuple[str, ...]
    message: str
    path: str
    sha256: str
    is_merge: bool
    is_branch_point: bool


@dataclass(frozen=True)
class Plan:
    """Steps in run order; ``to_heads`` is what the version table holds afterwards."""

    direction: Direction
    from_heads: tuple[str, ...]
    target: str
    steps: tuple[PlanStep, ...]
    to_heads: tuple[str, ...]

    @property
    def revisions(self) -> tuple[str, ...]:
        return tuple(step.revision for step in self.steps)

    @property
    def is_empty(self) -> bool:
        return not self.steps


def file_sha256(path: str | Path) -> str:
    """SHA-256 hex digest of a revision file's bytes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _step(script_rev: Script) -> PlanStep:
    return PlanStep(
        revision=script_rev.revision,
        down_revisions=tuple(script_rev._versioned_down_revisions),
        dependencies=tuple(script_rev._resolved_dependencies),
        branch_labels=tuple(sorted(script_rev.branch_labels)),
        message=(script_rev.doc or "").strip(),
        path=script_rev.path,
        sha256=file_sha256(script_rev.path),
        is_merge=script_rev.is_merge_point,
        is_branch_point=script_rev.is_branch_point,
    )


def applied_revisions(script: ScriptDirectory, heads: Iterable[str]) -> frozenset[str]:
    """Every revision a database at ``heads`` has applied: ancestors, ``depends_on`` included.

    Raises ``PlanError`` when a head is not in the script directory.
    """
    try:
        revs = script.revision_map.get_revisions(tuple(heads))
        nodes = script.revision_map._get_ancestor_nodes(revs, include_dependencies=True)
        return frozenset(rev.revision for rev in nodes)
    except (CommandError, RevisionError) as exc:
        raise PlanError(str(exc)) from None


def _heads_of(script: ScriptDirectory, applied: frozenset[str]) -> tuple[str, ...]:
    """The version-table rows for an applied set: revisions no applied revision builds on.

    Like Alembic's ``HeadMaintainer``, a revision only reached through another
    one's ``depends_on`` is not kept as a row of its own.
    """
    parents: set[str] = set()
    for rev_id in applied:
        parents.update(script.get_revision(rev_id)._all_down_revisions)
    return tuple(sorted(applied - parents))


def compute_plan(
    script: ScriptDirectory,
    *,
    current_heads: Sequence[str],
    target: str,
    direction: Direction,
) -> Plan:
    """The ordered steps ``alembic upgrade|downgrade <target>`` would run from ``current_heads``.

    ``target`` is anything Alembic accepts: ``heads``, ``head``, a revision
    (prefix), ``label@head``, ``label@rev``, relative ``+2``/``-1``, ``base``.
    Raises ``PlanError`` with a readable message for unknown or unreachable
    targets and unknown current heads.
    """
    if direction not in ("upgrade", "downgrade"):
        raise PlanError(f"direction must be upgrade or downgrade, not {direction!r}")
    if not target or not target.strip():
        raise PlanError("choose a target revision")
    heads = tuple(current_heads)
    before = applied_revisions(script, heads)
    try:
        if direction == "upgrade":
            raw = script._upgrade_revs(target.strip(), heads)
        else:
            raw = script._downgrade_revs(target.strip(), heads)
    except (CommandError, RevisionError) as exc:
        raise PlanError(str(exc)) from None
    steps = tuple(_step(step.revision) for step in raw)
    ids = {step.revision for step in steps}
    after = before | ids if direction == "upgrade" else before - ids
    return Plan(
        direction=direction,
        from_heads=heads,
        target=target.strip(),
        steps=steps,
        to_heads=_heads_of(script, frozenset(after)),
    )


def render_plan_sql(
    script: ScriptDirectory,
    plan: Plan,
    *,
    dialect: str,
    version_table: str = "alembic_version",
    version_table_schema: str | None = None,
    transactional_ddl: bool | None = None,
    transaction_per_migration: bool = False,
) -> list[RevisionSQL]:
    """Offline SQL of ``plan`` for ``dialect``, one ``RevisionSQL`` per step, in run order.

    Raises ``dashboard.migrator.sql.SQLRenderError`` when a revision cannot run offline.
    """
    if plan.is_empty:
        return []
    return render_sql(
        script,
        dialect=dialect,
        from_heads=plan.from_heads,
        target=plan.target,
        direction=plan.direction,
        version_table=version_table,
        version_table_schema=version_table_schema,
        transactional_ddl=transactional_ddl,
        transaction_per_migration=transaction_per_migration,
    )
