"""The plain ``alembic`` CLI from the repository root, as a person would run it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.conftest import create_postgres_database, drop_postgres_database
from tests.migrations.conftest import REPO_ROOT, revisions_in_order

ENV_VAR = "MAGNETIQ_DATABASE_URL"


def run_alembic(*args: str, url: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != ENV_VAR}
    if url is not None:
        env[ENV_VAR] = url
    return subprocess.run(
        [sys.executable, "-m", "alembic", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def fresh_postgres_url() -> Iterator[str]:
    url = create_postgres_database("magnetiq_cli")
    yield url
    drop_postgres_database(url)


@pytest.mark.postgres
def test_it_upgrades_a_fresh_postgres_database_with_the_async_driver(
    fresh_postgres_url: str,
) -> None:
    assert fresh_postgres_url.startswith("postgresql+psycopg://")

    upgrade = run_alembic("upgrade", "head", url=fresh_postgres_url)
    assert upgrade.returncode == 0, upgrade.stderr
    check = run_alembic("check", url=fresh_postgres_url)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "No new upgrade operations detected" in check.stdout

    engine = sa.create_engine(fresh_postgres_url, poolclass=sa.pool.NullPool)
    try:
        tables = sa.inspect(engine).get_table_names()
        with engine.connect() as connection:
            version = connection.execute(sa.text("SELECT version_num FROM alembic_version")).all()
    finally:
        engine.dispose()
    assert len(tables) >= 24 + 1
    assert "alembic_version" in tables
    assert version == [(revisions_in_order()[-1].revision,)]


def test_it_upgrades_a_sqlite_file_given_a_sync_url(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'magnetiq.sqlite3'}"
    upgrade = run_alembic("upgrade", "head", url=url)
    assert upgrade.returncode == 0, upgrade.stderr
    current = run_alembic("current", url=url)
    assert f"{revisions_in_order()[-1].revision} (head)" in current.stdout


@pytest.mark.parametrize(
    "url", ["postgresql+psycopg://nobody@127.0.0.1:1/none", "sqlite+aiosqlite:///unused.db"]
)
def test_it_renders_the_whole_history_as_sql_offline(url: str) -> None:
    result = run_alembic("upgrade", "head", "--sql", url=url)

    assert result.returncode == 0, result.stderr
    sql = result.stdout
    assert "CREATE TABLE admin_users" in sql
    assert "CREATE TABLE audit_logs" in sql
    assert "UPDATE admin_users SET full_name" in sql
    assert "CREATE INDEX ix_pages_status_published_at" in sql
    assert sql.count("UPDATE alembic_version") >= 10
    assert not (REPO_ROOT / "unused.db").exists()


def test_it_fails_in_one_line_naming_the_variable_when_the_url_is_unset() -> None:
    result = run_alembic("upgrade", "head", url=None)

    assert result.returncode != 0
    assert "Traceback" not in result.stdout + result.stderr
    failed = [line for line in result.stdout.splitlines() if line.strip()]
    assert len(failed) == 1
    assert failed[0].startswith("FAILED: ")
    assert ENV_VAR in failed[0]
