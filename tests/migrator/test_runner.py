"""dashboard.migrator.runner against throw-away PostgreSQL databases and SQLite files."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, inspect, pool, text

from dashboard.migrator.runner import (
    ProgressEvent,
    RunFailed,
    RunOptions,
    read_heads_on_connection,
    run_plan,
)
from tests.migrator.execution_project import alembic_config, throwaway_postgres, write_project


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_project(tmp_path_factory.mktemp("runner_project"))


@pytest.fixture(params=["postgresql", "sqlite"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        eng = create_engine(f"sqlite:///{tmp_path / 'target.sqlite3'}", poolclass=pool.NullPool)
        yield eng
        eng.dispose()
        return
    with throwaway_postgres("runner") as url:
        eng = create_engine(url, poolclass=pool.NullPool)
        yield eng
        eng.dispose()


@pytest.fixture
def pg_engine() -> Iterator[Engine]:
    with throwaway_postgres("runner") as url:
        eng = create_engine(url, poolclass=pool.NullPool)
        yield eng
        eng.dispose()


def _run(engine: Engine, project: Path, target: str, direction: str = "upgrade", **kw: object):
    events: list[ProgressEvent] = []
    logs: list[str] = []
    sql: list[str] = []
    planned = kw.pop("planned", [])
    with engine.connect() as conn:
        result = run_plan(
            config=alembic_config(project),
            connection=conn,
            options=RunOptions(direction=direction, target=target, **kw),  # type: ignore[arg-type]
            planned_revisions=planned,  # type: ignore[arg-type]
            on_progress=events.append,
            on_log=logs.append,
            on_sql=sql.append,
        )
    return result, events, logs, sql


def _heads(engine: Engine) -> tuple[str, ...]:
    with engine.connect() as conn:
        return read_heads_on_connection(
            conn, version_table="alembic_version", version_table_schema=None
        )


def test_it_upgrades_and_reports_each_revision(engine: Engine, project: Path) -> None:
    result, events, logs, sql = _run(engine, project, "c", planned=["a", "b", "c"])

    assert _heads(engine) == ("c",)
    assert result.applied == ["a", "b", "c"] == result.committed
    assert [(e.index, e.total, e.revision) for e in events] == [
        (1, 3, "a"),
        (2, 3, "b"),
        (3, 3, "c"),
    ]
    assert events[0].next_revision == "b" and events[-1].next_revision is None
    assert any("CREATE TABLE tags" in s for s in sql)
    assert any("Running upgrade" in line for line in logs)
    assert "tags" in inspect(engine).get_table_names()


def test_it_downgrades_to_a_revision(engine: Engine, project: Path) -> None:
    _run(engine, project, "c", planned=["a", "b", "c"])

    result, events, _, _ = _run(engine, project, "a", "downgrade", planned=["c", "b"])

    assert _heads(engine) == ("a",)
    assert [e.revision for e in events] == ["c", "b"]
    assert "tags" not in inspect(engine).get_table_names()


@pytest.fixture(params=["postgresql", "sqlite"])
def run_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """The engine a run uses (``connect.target_engine``), on each dialect."""
    from dashboard.migrator.connect import target_engine

    if request.param == "sqlite":
        eng = target_engine(f"sqlite:///{tmp_path / 'target.sqlite3'}")
        yield eng
        eng.dispose()
        return
    with throwaway_postgres("runner") as url:
        eng = target_engine(url)
        yield eng
        eng.dispose()


def test_it_rolls_back_the_whole_plan_when_a_revision_raises(
    run_engine: Engine, project: Path
) -> None:
    """All or nothing on both dialects: on SQLite too, a failed plan leaves no revision
    behind (the run's engine lets SQLAlchemy BEGIN before the DDL)."""
    _run(run_engine, project, "a", planned=["a"])

    with pytest.raises(RunFailed) as failure:
        _run(run_engine, project, "boom", planned=["b", "c", "boom"])

    assert failure.value.revision == "boom"
    assert "boom: this revision always fails" in str(failure.value)
    assert failure.value.result.committed == []
    assert _heads(run_engine) == ("a",)
    tables = inspect(run_engine).get_table_names()
    assert "tags" not in tables and "half_done" not in tables
    assert "note" not in {column["name"] for column in inspect(run_engine).get_columns("items")}


def test_it_keeps_committed_revisions_with_transaction_per_migration(
    pg_engine: Engine, project: Path
) -> None:
    with pytest.raises(RunFailed) as failure:
        _run(
            pg_engine,
            project,
            "boom",
            planned=["a", "b", "c", "boom"],
            transaction_per_migration=True,
        )

    assert failure.value.result.committed == ["a", "b", "c"]
    assert _heads(pg_engine) == ("c",)
    assert "half_done" not in inspect(pg_engine).get_table_names()


def test_it_fails_on_lock_timeout_when_a_table_is_locked(pg_engine: Engine, project: Path) -> None:
    _run(pg_engine, project, "a", planned=["a"])
    blocker = pg_engine.connect()
    blocker.execute(text("LOCK TABLE items IN ACCESS EXCLUSIVE MODE"))
    try:
        with pytest.raises(RunFailed) as failure:
            _run(pg_engine, project, "b", planned=["b"], lock_timeout=timedelta(milliseconds=300))
    finally:
        blocker.rollback()
        blocker.close()

    assert failure.value.reason == "lock_timeout"
    assert failure.value.revision == "b"
    assert _heads(pg_engine) == ("a",)
    assert "note" not in {c["name"] for c in inspect(pg_engine).get_columns("items")}


def test_it_fails_on_statement_timeout(pg_engine: Engine, project: Path) -> None:
    _run(pg_engine, project, "c", planned=["a", "b", "c"])

    with pytest.raises(RunFailed) as failure:
        _run(
            pg_engine,
            project,
            "slow",
            planned=["slow"],
            statement_timeout=timedelta(milliseconds=300),
        )

    assert failure.value.reason == "statement_timeout"
    assert _heads(pg_engine) == ("c",)


def test_it_refuses_a_connection_with_an_open_transaction(pg_engine: Engine, project: Path) -> None:
    with pg_engine.connect() as conn:
        conn.execute(text("SELECT 1"))
        with pytest.raises(ValueError, match="open transaction"):
            run_plan(
                config=alembic_config(project),
                connection=conn,
                options=RunOptions(direction="upgrade", target="a"),
                planned_revisions=["a"],
            )


def test_it_only_relays_log_lines_of_its_own_thread(pg_engine: Engine, project: Path) -> None:
    other_logs: list[str] = []

    def other_thread() -> None:
        import logging

        logging.getLogger("alembic.runtime.migration").info("from another thread")

    _, _, logs, _ = _run(pg_engine, project, "a", planned=["a"])
    thread = threading.Thread(target=other_thread)
    thread.start()
    thread.join(timeout=5)

    assert not any("another thread" in line for line in logs + other_logs)
