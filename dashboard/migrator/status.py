"""Where an environment's database stands, read without running ``env.py``.

Reading uses ``MigrationContext.get_current_heads`` on a short-lived
connection with connect and statement timeouts, never creates anything (no
version table is created by looking; SQLite files are opened read-only) and
turns every failure into a state with a password-free reason.

Public API (stable)::

    read_current_heads(url, *, version_table, version_table_schema, connect_timeout)
        -> tuple[str, ...]            # raises TargetUnreachable / NoVersionTable
    status_read(script, *, url, version_table, version_table_schema, connect_timeout)
        -> EnvironmentStatus
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError
from sqlalchemy.pool import NullPool

from dashboard.migrator.plan import PlanError, applied_revisions, compute_plan
from dashboard.migrator.secrets import scrub_secret

__all__ = [
    "EnvironmentState",
    "EnvironmentStatus",
    "NoVersionTable",
    "TargetUnreachable",
    "read_current_heads",
    "status_read",
]

DEFAULT_CONNECT_TIMEOUT = 3.0


class EnvironmentState(StrEnum):
    UP_TO_DATE = "up_to_date"
    PENDING = "pending"
    UNREACHABLE = "unreachable"
    NO_VERSION_TABLE = "no_version_table"
    UNKNOWN_REVISION = "unknown_revision"


class TargetUnreachable(Exception):
    """The target did not answer in time or refused; ``str()`` is the driver's reason, no secret."""


class NoVersionTable(Exception):
    """The database answers but has no version table (nothing was ever applied)."""


@dataclass(frozen=True)
class EnvironmentStatus:
    """What a status read found; ``pending`` is the exact ``upgrade heads`` order."""

    state: EnvironmentState
    current_heads: tuple[str, ...] = ()
    pending: tuple[str, ...] = ()
    applied: frozenset[str] = field(default_factory=frozenset)
    unknown_revisions: tuple[str, ...] = ()
    error: str | None = None
    read_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def multiple_heads(self) -> bool:
        return len(self.current_heads) > 1


def _engine(url: str, *, connect_timeout: float) -> Engine:
    """A pool-less engine that gives up quickly and never writes."""
    parsed: URL = make_url(url)
    seconds = max(1, round(connect_timeout))
    connect_args: dict[str, Any] = {}
    backend = parsed.get_backend_name()
    if backend == "postgresql":
        ms = int(connect_timeout * 1000)
        connect_args = {
            "connect_timeout": seconds,
            "options": f"-c statement_timeout={ms} -c lock_timeout={ms}",
        }
    elif backend == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            if not Path(database).exists():
                raise TargetUnreachable(f"SQLite database file {database} does not exist")
            parsed = parsed.set(database=f"file:{database}?mode=ro", query={"uri": "true"})
        connect_args = {"timeout": connect_timeout}
    elif backend in ("mysql", "mariadb"):
        connect_args = {"connect_timeout": seconds, "read_timeout": seconds}
    return create_engine(parsed, poolclass=NullPool, connect_args=connect_args)


def _reason(exc: BaseException, url: str) -> str:
    inner = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    text = " ".join(str(inner).split()) or type(inner).__name__
    return scrub_secret(text, url)


def _read(url: str, version_table: str, schema: str | None, timeout: float) -> tuple[str, ...]:
    try:
        engine = _engine(url, connect_timeout=timeout)
    except ArgumentError:
        raise TargetUnreachable("the configured value is not a database URL") from None
    try:
        with engine.connect() as connection:
            if not inspect(connection).has_table(version_table, schema=schema):
                raise NoVersionTable(f"no {version_table} table yet")
            context = MigrationContext.configure(
                connection,
                opts={"version_table": version_table, "version_table_schema": schema},
            )
            return tuple(context.get_current_heads())
    except (SQLAlchemyError, OSError) as exc:
        raise TargetUnreachable(_reason(exc, url)) from None
    except ModuleNotFoundError as exc:
        raise TargetUnreachable(f"database driver not installed: {exc.name}") from None
    finally:
        engine.dispose()


def read_current_heads(
    url: str,
    *,
    version_table: str = "alembic_version",
    version_table_schema: str | None = None,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
) -> tuple[str, ...]:
    """Return the rows of the version table (current heads) of the database at ``url``.

    Raises ``TargetUnreachable`` (password-free reason) when the database does
    not answer within about ``connect_timeout`` seconds (a watchdog enforces
    it whatever the driver does), and ``NoVersionTable`` when it has none.
    """
    outcome: dict[str, Any] = {}

    def work() -> None:
        try:
            outcome["heads"] = _read(url, version_table, version_table_schema, connect_timeout)
        except BaseException as exc:  # handed to the caller's thread
            outcome["error"] = exc

    worker = threading.Thread(target=work, name="read-current-heads", daemon=True)
    worker.start()
    worker.join(timeout=connect_timeout * 2 + 2)
    if worker.is_alive():
        raise TargetUnreachable(f"no answer within {connect_timeout * 2 + 2:.0f} s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["heads"]


def status_read(
    script: ScriptDirectory,
    *,
    url: str,
    version_table: str = "alembic_version",
    version_table_schema: str | None = None,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
) -> EnvironmentStatus:
    """Read the database at ``url`` and classify it; never raises for target problems."""
    try:
        heads = read_current_heads(
            url,
            version_table=version_table,
            version_table_schema=version_table_schema,
            connect_timeout=connect_timeout,
        )
    except TargetUnreachable as exc:
        return EnvironmentStatus(state=EnvironmentState.UNREACHABLE, error=str(exc))
    except NoVersionTable as exc:
        pending = compute_plan(script, current_heads=(), target="heads", direction="upgrade")
        return EnvironmentStatus(
            state=EnvironmentState.NO_VERSION_TABLE, pending=pending.revisions, error=str(exc)
        )
    return status_from_heads(script, heads)


def status_from_heads(script: ScriptDirectory, heads: tuple[str, ...]) -> EnvironmentStatus:
    """Classify a database standing at ``heads`` against ``script``."""
    unknown = tuple(h for h in heads if not _known(script, h))
    if unknown:
        return EnvironmentStatus(
            state=EnvironmentState.UNKNOWN_REVISION,
            current_heads=heads,
            unknown_revisions=unknown,
            error=(
                f"revision {', '.join(unknown)} is in the database but not in this code: "
                "the environment is ahead of this code, or the history was rewritten"
            ),
        )
    try:
        plan = compute_plan(script, current_heads=heads, target="heads", direction="upgrade")
    except PlanError as exc:
        return EnvironmentStatus(
            state=EnvironmentState.UNKNOWN_REVISION, current_heads=heads, error=str(exc)
        )
    return EnvironmentStatus(
        state=EnvironmentState.PENDING if plan.steps else EnvironmentState.UP_TO_DATE,
        current_heads=heads,
        pending=plan.revisions,
        applied=applied_revisions(script, heads),
    )


def _known(script: ScriptDirectory, revision: str) -> bool:
    try:
        rev = script.revision_map.get_revision(revision)
    except Exception:  # ResolutionError, ambiguous prefix...
        return False
    return rev is not None and rev.revision == revision
