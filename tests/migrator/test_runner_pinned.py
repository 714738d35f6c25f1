"""The plan that is checked is the plan that runs; one migration per process; session guards.

Against throw-away PostgreSQL databases (and SQLite where the dialect matters),
with real files changed on disk between the check and the run.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, inspect, pool, text

from dashboard.migrator.alembic_context import ConcurrentRunRefused
from dashboard.migrator.connect import target_engine
from dashboard.migrator.pinned import PinMismatch, env_py_sha256, load_pinned_script
from dashboard.migrator.runner import (
    RunFailed,
    RunOptions,
    committed_between,
    executed_sql_sha256,
    read_heads_on_connection,
    run_plan,
)
from dashboard.migrator.sql import render_sql
from tests.migrator.execution_project import (
    LATE_REVISION,
    SLOW_SECONDS,
    alembic_config,
    throwaway_postgres,
    write_project,
)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A fresh copy per test: tests edit its files."""
    return write_project(tmp_path / "project")


@pytest.fixture
def pg() -> Iterator[Engine]:
    with throwaway_postgres("pinned") as url:
        engine = create_engine(url, poolclass=pool.NullPool)
        yield engine
        engine.dispose()


def _hashes(project: Path, *revisions: str) -> dict[str, str]:
    versions = project.parent / "versions"
    return {
        rev: hashlib.sha256((versions / f"{rev}_revision.py").read_bytes()).hexdigest()
        for rev in revisions
    }


def _heads(engine: Engine) -> tuple[str, ...]:
    with engine.connect() as conn:
        return read_heads_on_connection(
            conn, version_table="alembic_version", version_table_schema=None
        )


def _tables(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names())


def _run(engine: Engine, project: Path, pinned, target: str, planned, **kw):  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return run_plan(
            config=alembic_config(project),
            pinned=pinned,
            connection=conn,
            options=RunOptions(direction="upgrade", target=target),
            planned_revisions=planned,
            **kw,
        )


def test_the_revision_bytes_that_were_checked_are_the_bytes_that_run(
    pg: Engine, project: Path
) -> None:
    pinned = load_pinned_script(
        alembic_config(project), revision_hashes=_hashes(project, "a"), env_sha256=None
    )
    # A deploy lands right after the check: the file now creates another table.
    a_file = project.parent / "versions" / "a_revision.py"
    a_file.write_text(a_file.read_text().replace('"items"', '"swapped_in"'))

    _run(pg, project, pinned, "a", ["a"], expected_heads=["a"])

    assert "items" in _tables(pg) and "swapped_in" not in _tables(pg)


def test_a_file_changed_before_the_check_is_refused_by_name(project: Path) -> None:
    expected = _hashes(project, "a", "b")
    b_file = project.parent / "versions" / "b_revision.py"
    b_file.write_text(b_file.read_text() + "\n# edited after approval\n")

    with pytest.raises(PinMismatch) as refused:
        load_pinned_script(alembic_config(project), revision_hashes=expected, env_sha256=None)

    assert refused.value.changed == ["b"]


def test_a_worker_reuses_a_loaded_plan_but_still_refuses_a_file_changed_in_place(
    project: Path,
) -> None:
    """Target after target of a fleet, the project is loaded once; the plan's files are
    hashed again on every use, so an edit that keeps size and mtime is still refused."""
    hashes = _hashes(project, "a", "b")
    first = load_pinned_script(alembic_config(project), revision_hashes=hashes, env_sha256=None)
    again = load_pinned_script(alembic_config(project), revision_hashes=hashes, env_sha256=None)
    assert again is first

    path = project.parent / "versions" / "b_revision.py"
    stat = path.stat()
    source = path.read_bytes()
    path.write_bytes(source.replace(b'"note"', b'"nope"'))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert path.stat().st_size == stat.st_size and path.stat().st_mtime_ns == stat.st_mtime_ns

    with pytest.raises(PinMismatch) as refused:
        load_pinned_script(alembic_config(project), revision_hashes=hashes, env_sha256=None)
    assert refused.value.changed == ["b"]


def test_env_py_is_pinned_and_runs_from_its_checked_bytes(pg: Engine, project: Path) -> None:
    config = alembic_config(project)
    from alembic.script import ScriptDirectory

    pinned_hash = env_py_sha256(ScriptDirectory.from_config(config))
    env_py = project.parent / "env.py"
    original = env_py.read_text()
    env_py.write_text(original + "\nraise RuntimeError('an env.py that was never reviewed')\n")
    with pytest.raises(PinMismatch) as refused:
        load_pinned_script(config, revision_hashes={}, env_sha256=pinned_hash)
    assert refused.value.changed == ["env.py"]

    env_py.write_text(original)
    pinned = load_pinned_script(
        config, revision_hashes=_hashes(project, "a"), env_sha256=pinned_hash
    )
    env_py.write_text(original + "\nraise RuntimeError('an env.py that was never reviewed')\n")
    _run(pg, project, pinned, "a", ["a"])  # the checked env.py runs, not the one on disk now

    assert _heads(pg) == ("a",)


def test_a_revision_that_lands_after_the_check_never_runs(pg: Engine, project: Path) -> None:
    pinned = load_pinned_script(
        alembic_config(project), revision_hashes=_hashes(project, "a", "b", "c"), env_sha256=None
    )
    (project.parent / "versions" / "d_revision.py").write_text(LATE_REVISION)

    result = _run(pg, project, pinned, "c", ["a", "b", "c"], expected_heads=["c"])

    assert result.applied == ["a", "b", "c"]
    assert _heads(pg) == ("c",) and "unreviewed" not in _tables(pg)


def test_a_plan_that_resolves_differently_is_refused_before_any_statement(
    pg: Engine, project: Path
) -> None:
    # The script directory is read after d landed; the approved plan had a..c only.
    (project.parent / "versions" / "d_revision.py").write_text(LATE_REVISION)
    (project.parent / "versions" / "boom_revision.py").unlink()
    (project.parent / "versions" / "slow_revision.py").unlink()
    pinned = load_pinned_script(alembic_config(project), revision_hashes={}, env_sha256=None)

    with pytest.raises(RunFailed) as failed:
        _run(pg, project, pinned, "heads", ["a", "b", "c"])

    assert failed.value.reason == "plan_mismatch"
    assert "the approved plan is a, b, c: nothing was run" in str(failed.value)
    assert _tables(pg) <= {"alembic_version"} and _heads(pg) == ()


def test_a_run_that_would_end_elsewhere_than_approved_is_rolled_back_before_commit(
    pg: Engine, project: Path
) -> None:
    pinned = load_pinned_script(alembic_config(project), revision_hashes={}, env_sha256=None)

    with pytest.raises(RunFailed) as failed:
        _run(pg, project, pinned, "b", ["a", "b"], expected_heads=["c"])

    assert failed.value.reason == "plan_mismatch"
    assert "the version table would hold b" in str(failed.value)
    assert _heads(pg) == () and "items" not in _tables(pg)  # nothing committed


def test_the_executed_sql_hash_covers_every_statement_sent(pg: Engine, project: Path) -> None:
    sent: list[str] = []
    pinned = load_pinned_script(alembic_config(project), revision_hashes={}, env_sha256=None)
    result = _run(pg, project, pinned, "b", ["a", "b"], on_sql=sent.append)

    assert result.statements == len(sent) > 2
    assert result.sql_sha256 == executed_sql_sha256(sent)
    assert any("CREATE TABLE items" in statement for statement in sent)


def test_a_second_migration_in_one_process_is_refused_not_cross_wired(project: Path) -> None:
    with throwaway_postgres("guard_a") as url_a, throwaway_postgres("guard_b") as url_b:
        engine_a = create_engine(url_a, poolclass=pool.NullPool)
        engine_b = create_engine(url_b, poolclass=pool.NullPool)
        _run(engine_a, project, None, "c", None)
        outcome: dict[str, object] = {}

        def slow_run() -> None:
            try:
                outcome["a"] = _run(engine_a, project, None, "slow", ["slow"])
            except Exception as exc:  # reported below
                outcome["a"] = exc

        thread = threading.Thread(target=slow_run)
        thread.start()
        time.sleep(1.0)  # thread A is inside pg_sleep of the slow revision
        started = time.monotonic()
        with engine_b.connect() as conn, pytest.raises(ConcurrentRunRefused) as refused:
            run_plan(
                config=alembic_config(project),
                connection=conn,
                options=RunOptions(direction="upgrade", target="a"),
                planned_revisions=["a"],
            )
        waited = time.monotonic() - started
        thread.join(timeout=SLOW_SECONDS + 30)
        try:
            assert "prefork or solo worker" in str(refused.value)
            assert waited < SLOW_SECONDS + 5
            assert not isinstance(outcome["a"], Exception), outcome["a"]
            assert _heads(engine_a) == ("slow",) and "slow_done" in _tables(engine_a)
            assert _tables(engine_b) == set()  # B's DDL went nowhere, A's nowhere else
        finally:
            engine_a.dispose()
            engine_b.dispose()


def test_an_offline_rendering_waits_for_a_run_instead_of_capturing_its_statements(
    project: Path,
) -> None:
    from alembic.script import ScriptDirectory

    with throwaway_postgres("render") as url:
        engine = create_engine(url, poolclass=pool.NullPool)
        _run(engine, project, None, "c", None)
        thread = threading.Thread(target=lambda: _run(engine, project, None, "slow", ["slow"]))
        thread.start()
        time.sleep(1.0)
        script = ScriptDirectory.from_config(alembic_config(project))
        parts = render_sql(script, dialect="postgresql", from_heads=(), target="b")
        thread.join(timeout=SLOW_SECONDS + 30)
        try:
            rendered = "".join(part.sql for part in parts)
            assert "CREATE TABLE items" in rendered and "slow_done" not in rendered
            assert _heads(engine) == ("slow",) and "slow_done" in _tables(engine)
        finally:
            engine.dispose()


def test_the_session_has_the_silent_network_guards(pg: Engine, project: Path) -> None:
    url = pg.url.render_as_string(hide_password=False)
    engine = target_engine(url, application_name="run 1", tcp_timeout=timedelta(seconds=12))
    options = RunOptions(
        direction="upgrade",
        target="a",
        lock_timeout=timedelta(seconds=2),
        statement_timeout=timedelta(minutes=1),
        idle_in_transaction_timeout=timedelta(seconds=30),
        tcp_timeout=timedelta(seconds=12),
    )
    with engine.connect() as conn:
        run_plan(
            config=alembic_config(project),
            connection=conn,
            options=options,
            planned_revisions=["a"],
        )
        shown = {
            name: conn.exec_driver_sql(f"SHOW {name}").scalar()
            for name in (
                "idle_in_transaction_session_timeout",
                "tcp_keepalives_idle",
                "tcp_keepalives_count",
                "tcp_user_timeout",
                "lock_timeout",
                "application_name",
            )
        }
        client = conn.connection.dbapi_connection.info.get_parameters()
    engine.dispose()

    assert shown["idle_in_transaction_session_timeout"] == "30s"
    assert shown["lock_timeout"] == "2s" and shown["application_name"] == "run 1"
    assert shown["tcp_keepalives_idle"] in ("4", "4s") and shown["tcp_keepalives_count"] == "3"
    assert shown["tcp_user_timeout"] in ("12s", "12000ms", "12000")
    assert client["keepalives"] == "1" and client["tcp_user_timeout"] == "12000"


AUTOCOMMIT_REVISIONS = {
    "x1": (None, 'op.create_table("pages", sa.Column("id", sa.Integer, primary_key=True))'),
    "x2": (
        "x1",
        "with op.get_context().autocommit_block():\n"
        '        op.create_index("ix_pages_id", "pages", ["id"], postgresql_concurrently=True)',
    ),
    "x3": ("x2", 'raise RuntimeError("x3 always fails")'),
}


def test_committed_comes_from_the_heads_when_an_autocommit_block_commits_midway(
    pg: Engine, tmp_path: Path
) -> None:
    root = tmp_path / "autocommit"
    ini = write_project(root)
    versions = root / "versions"
    for path in versions.glob("*.py"):
        path.unlink()
    for rev, (down, body) in AUTOCOMMIT_REVISIONS.items():
        (versions / f"{rev}.py").write_text(
            f'"""{rev}"""\nimport sqlalchemy as sa\nfrom alembic import op\n\n'
            f"revision = {rev!r}\ndown_revision = {down!r}\nbranch_labels = None\n"
            f"depends_on = None\n\n\ndef upgrade():\n    {body}\n\n\ndef downgrade():\n    pass\n"
        )
    with pytest.raises(RunFailed) as failed:
        _run(pg, ini, None, "x3", ["x1", "x2", "x3"])
    from alembic.script import ScriptDirectory

    heads = _heads(pg)
    committed = committed_between(
        ScriptDirectory.from_config(alembic_config(ini)),
        direction="upgrade",
        from_heads=(),
        final_heads=heads,
        planned=["x1", "x2", "x3"],
    )

    assert failed.value.revision == "x3"
    assert failed.value.result.committed == []  # what the runner could tell: nothing, wrongly
    # x2's autocommit block committed x1 (and built x2's index outside any
    # transaction); x3 failed and rolled back the rest: the version table says x1.
    assert heads == ("x1",) and committed == ["x1"]
    with pg.connect() as conn:
        assert conn.execute(text("SELECT to_regclass('ix_pages_id')")).scalar() is not None
