"""``gate_sql``: a health check run on every migrated target of a wave before the next starts.

The query runs in a read-only transaction (PostgreSQL ``SET TRANSACTION READ
ONLY``; SQLite ``PRAGMA query_only``) with a statement timeout, on a
pool-less connection with a connect timeout, several targets at once. It
passes when its first column of its first row is true; anything else (false,
no row, an error, a timeout) fails the target with a message saying which,
scrubbed of the target's URL.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from django.db import close_old_connections
from sqlalchemy import text
from sqlalchemy.engine import make_url

from dashboard.environments.models import Environment, EnvironmentConfigError
from dashboard.migrator.connect import target_engine
from dashboard.migrator.secrets import scrub_secret

GATE_TIMEOUT = timedelta(seconds=30)
GATE_CONNECT_TIMEOUT = 5.0


def gate_evaluate(gate_sql: str, environment: Environment) -> tuple[bool, str]:
    """(passed, message) of ``gate_sql`` on one target; the message says why it failed."""
    try:
        url = environment.database_url()
    except EnvironmentConfigError as exc:
        return False, f"gate_sql not run: {exc}"
    timeout = min(environment.statement_timeout or GATE_TIMEOUT, GATE_TIMEOUT)
    postgres = make_url(url).get_backend_name() == "postgresql"
    engine = target_engine(
        url,
        application_name="migrations-dashboard gate",
        connect_timeout=GATE_CONNECT_TIMEOUT,
        statement_timeout=timeout if postgres else None,
    )
    try:
        with engine.connect() as connection:
            if postgres:
                connection.exec_driver_sql("SET TRANSACTION READ ONLY")
            else:
                connection.exec_driver_sql("PRAGMA query_only = ON")
            row = connection.execute(text(gate_sql)).first()
            connection.rollback()
    except Exception as exc:
        message = scrub_secret(f"{type(exc).__name__}: {exc}", url).splitlines()[0][:300]
        return False, f"gate_sql failed: {message}"
    finally:
        engine.dispose()
    if row is None:
        return False, "gate_sql returned no row (it must return one row whose first column is true)"
    if row[0] is True or row[0] == 1:
        return True, ""
    return False, f"gate_sql returned {row[0]!r}, not true"


def gates_evaluate(
    gate_sql: str, environments: Sequence[Environment], *, workers: int
) -> list[tuple[bool, str]]:
    """:func:`gate_evaluate` on each target, ``workers`` at a time, in order."""

    def one(environment: Environment) -> tuple[bool, str]:
        try:
            return gate_evaluate(gate_sql, environment)
        finally:
            close_old_connections()

    if not environments:
        return []
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(environments)))) as pool:
        return list(pool.map(one, environments))
