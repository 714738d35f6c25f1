"""dashboard.migrator.locks: PostgreSQL advisory locks and SQLite file locks."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, pool, text

from dashboard.migrator.locks import (
    LockNotAcquired,
    advisory_lock_key,
    find_advisory_lock_holder,
    pg_advisory_lock,
    sqlite_file_lock,
)
from tests.migrator.execution_project import throwaway_postgres

KEY = advisory_lock_key("public.alembic_version")


@pytest.fixture(scope="module")
def pg() -> Iterator[Engine]:
    with throwaway_postgres("locks") as url:
        engine = create_engine(
            url, poolclass=pool.NullPool, connect_args={"application_name": "holder-under-test"}
        )
        yield engine
        engine.dispose()


def test_it_names_the_holder_when_the_wait_runs_out(pg: Engine) -> None:
    with pg.connect() as first, pg.connect() as second:
        first_pid = first.execute(text("SELECT pg_backend_pid()")).scalar()
        first.commit()
        with pg_advisory_lock(first, key=KEY, wait=1):
            assert not first.in_transaction()
            started = time.monotonic()
            with (
                pytest.raises(LockNotAcquired) as failure,
                pg_advisory_lock(second, key=KEY, wait=0.5, poll_interval=0.1),
            ):
                pytest.fail("two sessions held the lock at once")
            assert 0.4 < time.monotonic() - started < 5

    assert failure.value.holder is not None
    assert failure.value.holder.pid == first_pid
    assert "holder-under-test" in str(failure.value)
    assert "another migration holds the lock" in str(failure.value)


def test_it_is_free_again_after_release_and_after_the_session_dies(pg: Engine) -> None:
    with pg.connect() as first:
        with pg_advisory_lock(first, key=KEY, wait=1):
            pass
        assert find_advisory_lock_holder(first, KEY) is None
        first.commit()

    victim = pg.connect()
    victim_pid = victim.execute(text("SELECT pg_backend_pid()")).scalar()
    victim.commit()
    victim.execute(text("SELECT pg_advisory_lock(:k)"), {"k": KEY})
    victim.commit()
    with pg.connect() as killer:
        assert find_advisory_lock_holder(killer, KEY).pid == victim_pid  # type: ignore[union-attr]
        killer.execute(text("SELECT pg_terminate_backend(:p)"), {"p": victim_pid})
        killer.commit()
        with pg_advisory_lock(killer, key=KEY, wait=3):
            assert find_advisory_lock_holder(killer, KEY).pid != victim_pid  # type: ignore[union-attr]
            killer.commit()
    victim.invalidate()


def test_it_gives_distinct_keys_to_distinct_targets() -> None:
    assert advisory_lock_key("public.alembic_version") != advisory_lock_key("cms.alembic_version")
    assert -(2**63) <= KEY < 2**63


HOLD_SCRIPT = """
import sys, time
from dashboard.migrator.locks import sqlite_file_lock
with sqlite_file_lock(sys.argv[1], wait=1, owner="other worker"):
    print("locked", flush=True)
    time.sleep(30)
"""


def test_it_locks_a_sqlite_file_across_processes(tmp_path: Path) -> None:
    database = tmp_path / "target.sqlite3"
    database.touch()
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_SCRIPT, str(database)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(LockNotAcquired) as failure, sqlite_file_lock(database, wait=0.3):
            pytest.fail("two processes held the SQLite lock at once")
        assert failure.value.holder is not None
        assert failure.value.holder.pid == holder.pid
        assert "other worker" in str(failure.value)
    finally:
        holder.kill()
        holder.wait(timeout=10)

    with sqlite_file_lock(database, wait=2, owner="me"):
        assert database.exists()
