"""Offline SQL without env.py equals ``alembic upgrade/downgrade --sql``, per revision."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from alembic import command

from dashboard.migrator.sql import SQLRenderError, render_revision_sql, render_sql
from tests.migrator.environments_support import alembic_config, script_directory, write_history


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_history(tmp_path_factory.mktemp("history"))


def _cli_sql(history: Path, dialect: str, fn: str, revision: str) -> str:
    config = alembic_config(history, f"{dialect}://")
    config.output_buffer = io.StringIO()
    getattr(command, fn)(config, revision, sql=True)
    return config.output_buffer.getvalue()


@pytest.mark.parametrize("dialect", ["postgresql", "sqlite"])
def test_upgrade_sql_equals_the_cli(history: Path, dialect: str) -> None:
    script = script_directory(history)
    for start, heads_sql in (((), "heads"), (("b",), "b:heads")):
        ours = render_sql(script, dialect=dialect, from_heads=start, target="heads")
        assert "".join(item.sql for item in ours) == _cli_sql(
            history, dialect, "upgrade", heads_sql
        )
    assert [item.revision for item in ours] == ["d", "x", "c1", "c2", "m", "e"]


@pytest.mark.parametrize("dialect", ["postgresql", "sqlite"])
def test_downgrade_sql_equals_the_cli(history: Path, dialect: str) -> None:
    script = script_directory(history)
    ours = render_sql(script, dialect=dialect, from_heads=("e",), target="b", direction="downgrade")
    assert "".join(item.sql for item in ours) == _cli_sql(history, dialect, "downgrade", "e:b")
    assert [item.revision for item in ours] == ["e", "m", "c2", "c1", "d"]


def test_each_revision_gets_its_own_statements(history: Path) -> None:
    script = script_directory(history)
    parts = {
        item.revision: item.sql
        for item in render_sql(script, dialect="postgresql", from_heads=("c2", "d"), target="heads")
    }
    assert list(parts) == ["x", "m", "e"]
    assert "CREATE TABLE audit_log" in parts["x"] and "DROP COLUMN last" in parts["e"]
    assert "DROP COLUMN" not in parts["x"]
    assert "DELETE FROM alembic_version" in parts["m"]


def test_single_revision_sql_for_the_graph_page(history: Path) -> None:
    script = script_directory(history)
    up = render_revision_sql(script, "e", dialect="postgresql")
    down = render_revision_sql(script, "e", dialect="postgresql", direction="downgrade")
    assert "ALTER TABLE users DROP COLUMN last" in up.sql
    assert "ADD COLUMN last" in down.sql
    merge_down = render_revision_sql(script, "m", dialect="postgresql", direction="downgrade")
    assert "-- Running downgrade m -> c2, d" in merge_down.sql


def test_it_uses_a_custom_version_table(history: Path) -> None:
    script = script_directory(history)
    parts = render_sql(
        script,
        dialect="postgresql",
        from_heads=(),
        target="a",
        version_table="schema_history",
        version_table_schema="ops",
    )
    assert "CREATE TABLE ops.schema_history" in parts[0].sql


def test_unknown_target_is_a_readable_error(history: Path) -> None:
    with pytest.raises(SQLRenderError, match="nope"):
        render_sql(script_directory(history), dialect="sqlite", from_heads=(), target="nope")
