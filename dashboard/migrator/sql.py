"""Offline ("--sql") rendering of Alembic revisions, generic and without ``env.py``.

This mirrors what ``alembic upgrade --sql`` / ``alembic downgrade --sql`` do
(``alembic.command.upgrade``): an ``EnvironmentContext`` with ``as_sql=True``
and a ``starting_rev``, then ``run_migrations()`` -- except that the project's
``env.py`` is not executed, so any Alembic project can be rendered for any
dialect. Unlike the CLI, ``starting_rev`` may be several heads.

Public API (stable, used by the graph page and the approvals issue)::

    render_sql(script, *, dialect, from_heads, target, direction="upgrade",
               version_table="alembic_version", version_table_schema=None,
               transactional_ddl=None, transaction_per_migration=False)
        -> list[RevisionSQL]           # one entry per revision, in run order

    render_revision_sql(script, revision, *, dialect, direction="upgrade", ...)
        -> RevisionSQL                 # one revision alone, from its down revisions

``"".join(r.sql for r in result)`` is exactly the script that the CLI would
print for the same range (leading ``BEGIN`` is attributed to the first
revision, trailing ``COMMIT`` to the last).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from alembic.config import Config
from alembic.runtime.environment import EnvironmentContext
from alembic.runtime.migration import MigrationContext, MigrationStep, RevisionStep
from alembic.script import ScriptDirectory
from alembic.util import CommandError

from dashboard.migrator.alembic_context import ALEMBIC_CONTEXT

__all__ = ["RevisionSQL", "SQLRenderError", "render_revision_sql", "render_sql"]

Direction = Literal["upgrade", "downgrade"]

# ``alembic.op`` and ``alembic.context`` are process-global proxies: two
# renderings in parallel threads would write into each other's buffers, and a
# rendering beside a run would capture the run's DDL (see alembic_context).
_RENDER_LOCK = ALEMBIC_CONTEXT


class SQLRenderError(Exception):
    """A revision could not be rendered offline (it raised, or the range is invalid)."""


@dataclass(frozen=True)
class RevisionSQL:
    """The offline SQL of one revision step, as text ready to show or lint."""

    revision: str
    direction: Direction
    sql: str


def render_sql(
    script: ScriptDirectory,
    *,
    dialect: str,
    from_heads: Sequence[str],
    target: str,
    direction: Direction = "upgrade",
    version_table: str = "alembic_version",
    version_table_schema: str | None = None,
    transactional_ddl: bool | None = None,
    transaction_per_migration: bool = False,
) -> list[RevisionSQL]:
    """Render the SQL that going from ``from_heads`` to ``target`` would run, per revision.

    ``dialect`` is a SQLAlchemy dialect name (``postgresql``, ``sqlite``...).
    ``from_heads`` are the database's current heads (empty for an empty
    database). ``target`` is anything Alembic accepts (``heads``, a revision,
    ``label@head``, relative ``+1``/``-1``, ``base`` for downgrades).
    Raises ``SQLRenderError`` with a readable message on an invalid range or
    when a revision cannot run offline.
    """

    def planned(heads: Any) -> list[RevisionStep]:
        if direction == "upgrade":
            return script._upgrade_revs(target, heads)
        return script._downgrade_revs(target, heads)

    return _render(
        script,
        planned,
        dialect=dialect,
        from_heads=from_heads,
        target=target,
        direction=direction,
        version_table=version_table,
        version_table_schema=version_table_schema,
        transactional_ddl=transactional_ddl,
        transaction_per_migration=transaction_per_migration,
    )


def _render(
    script: ScriptDirectory,
    planned: Callable[[Any], list[RevisionStep]],
    *,
    dialect: str,
    from_heads: Sequence[str],
    target: str,
    direction: Direction,
    version_table: str,
    version_table_schema: str | None,
    transactional_ddl: bool | None,
    transaction_per_migration: bool,
) -> list[RevisionSQL]:
    buffer = io.StringIO()
    marks: list[tuple[str, int]] = []

    def steps(heads: Any, context: MigrationContext) -> Iterator[RevisionStep]:
        for step in planned(heads):
            marks.append((step.revision.revision, buffer.tell()))
            yield step

    config = Config()
    starting = tuple(from_heads) or None
    opts: dict[str, Any] = {
        "fn": steps,
        "as_sql": True,
        "starting_rev": starting,
        "destination_rev": target,
        "output_buffer": buffer,
    }
    try:
        with _RENDER_LOCK, EnvironmentContext(config, script, **opts) as env:
            configure_kw: dict[str, Any] = {
                "dialect_name": dialect,
                "output_buffer": buffer,
                "version_table": version_table,
                "version_table_schema": version_table_schema,
                "transaction_per_migration": transaction_per_migration,
            }
            if transactional_ddl is not None:
                configure_kw["transactional_ddl"] = transactional_ddl
            env.configure(**configure_kw)
            with env.begin_transaction():
                env.run_migrations()
    except CommandError as exc:
        raise SQLRenderError(str(exc)) from None
    except Exception as exc:  # a revision's own code failed offline
        where = f" in revision {marks[-1][0]}" if marks else ""
        raise SQLRenderError(f"{type(exc).__name__}{where}: {exc}") from exc
    return _split(buffer.getvalue(), marks, direction)


def _split(text: str, marks: list[tuple[str, int]], direction: Direction) -> list[RevisionSQL]:
    if not marks:
        return []
    bounds = [0] + [pos for _, pos in marks[1:]] + [len(text)]
    return [
        RevisionSQL(revision=rev, direction=direction, sql=text[bounds[i] : bounds[i + 1]])
        for i, (rev, _) in enumerate(marks)
    ]


def render_revision_sql(
    script: ScriptDirectory,
    revision: str,
    *,
    dialect: str,
    direction: Direction = "upgrade",
    version_table: str = "alembic_version",
    version_table_schema: str | None = None,
) -> RevisionSQL:
    """Render one revision alone: its upgrade from its down revisions, or its downgrade.

    The database is assumed to stand exactly at the revision's down revisions
    (upgrade) or at the revision itself (downgrade).
    """
    rev = script.get_revision(revision)
    if rev is None:
        raise SQLRenderError(f"unknown revision {revision!r}")
    if direction == "upgrade":
        start = tuple(rev._versioned_down_revisions)
        step = MigrationStep.upgrade_from_script(script.revision_map, rev)
    else:
        start = (rev.revision,)
        step = MigrationStep.downgrade_from_script(script.revision_map, rev)
    parts = _render(
        script,
        lambda heads: [step],
        dialect=dialect,
        from_heads=start,
        target=rev.revision,
        direction=direction,
        version_table=version_table,
        version_table_schema=version_table_schema,
        transactional_ddl=None,
        transaction_per_migration=False,
    )
    return RevisionSQL(
        revision=rev.revision, direction=direction, sql="".join(p.sql for p in parts)
    )
