"""Plans equal what Alembic's own commands do, on real PostgreSQL and SQLite targets."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import create_engine, text

from dashboard.migrator.plan import PlanError, applied_revisions, compute_plan, render_plan_sql
from dashboard.migrator.status import read_current_heads
from tests.migrator.environments_support import alembic_config, script_directory, write_history


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_history(tmp_path_factory.mktemp("history"))


def _upgrade(history: Path, url: str, *targets: str) -> list[str]:
    """Run the real ``alembic upgrade`` for each target; return the revisions it applied."""
    config = alembic_config(history, url)
    for target in targets:
        command.upgrade(config, target)
    return list(config.attributes.get("applied", []))


def test_it_plans_upgrade_heads_from_two_heads_like_alembic(history: Path, target_url: str) -> None:
    script = script_directory(history)
    _upgrade(history, target_url, "c2", "d")
    heads = read_current_heads(target_url)
    assert sorted(heads) == ["c2", "d"]

    plan = compute_plan(script, current_heads=heads, target="heads", direction="upgrade")
    ran = _upgrade(history, target_url, "heads")

    assert list(plan.revisions) == ran == ["x", "m", "e"]
    assert sorted(plan.to_heads) == sorted(read_current_heads(target_url)) == ["e", "x"]


def test_it_plans_from_an_empty_database_like_alembic(history: Path, target_url: str) -> None:
    script = script_directory(history)
    plan = compute_plan(script, current_heads=(), target="heads", direction="upgrade")
    assert list(plan.revisions) == _upgrade(history, target_url, "heads")
    assert applied_revisions(script, read_current_heads(target_url)) == set(plan.revisions)


def test_it_plans_to_a_branch_label_like_alembic(history: Path, target_url: str) -> None:
    script = script_directory(history)
    _upgrade(history, target_url, "b")
    plan = compute_plan(script, current_heads=("b",), target="feature@head", direction="upgrade")
    config = alembic_config(history, target_url)
    command.upgrade(config, "feature@head")
    assert list(plan.revisions) == config.attributes["applied"]
    assert sorted(plan.to_heads) == sorted(read_current_heads(target_url))


def test_it_plans_a_downgrade_like_alembic(history: Path, target_url: str) -> None:
    script = script_directory(history)
    _upgrade(history, target_url, "heads")
    heads = read_current_heads(target_url)
    plan = compute_plan(script, current_heads=heads, target="b", direction="downgrade")
    config = alembic_config(history, target_url)
    command.downgrade(config, "b")
    assert list(plan.revisions) == config.attributes["applied"] == ["e", "m", "c2", "c1", "d"]
    # x depends on b, so Alembic keeps only x as a row (b is implied).
    assert sorted(plan.to_heads) == sorted(read_current_heads(target_url)) == ["x"]


def test_offline_sql_from_two_heads_brings_postgres_where_alembic_would(
    history: Path, make_postgres_url: object
) -> None:
    """Run our offline SQL on one database and the real upgrade on another: same end state."""
    script = script_directory(history)
    ours, theirs = make_postgres_url(), make_postgres_url()  # type: ignore[operator]
    for url in (ours, theirs):
        _upgrade(history, url, "c2", "d")
    plan = compute_plan(script, current_heads=("c2", "d"), target="heads", direction="upgrade")
    sql = "".join(item.sql for item in render_plan_sql(script, plan, dialect="postgresql"))
    engine = create_engine(ours, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.exec_driver_sql(sql)
    engine.dispose()
    _upgrade(history, theirs, "heads")

    def columns(url: str) -> list[tuple[str, str]]:
        eng = create_engine(url)
        with eng.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT table_name, column_name FROM information_schema.columns "
                    "WHERE table_schema = 'public' ORDER BY 1, 2"
                )
            ).all()
        eng.dispose()
        return [tuple(row) for row in rows]

    assert sorted(read_current_heads(ours)) == sorted(read_current_heads(theirs)) == ["e", "x"]
    assert columns(ours) == columns(theirs)


def test_it_refuses_unknown_targets_readably(history: Path) -> None:
    script = script_directory(history)
    with pytest.raises(PlanError, match="zzz"):
        compute_plan(script, current_heads=("b",), target="zzz", direction="upgrade")
    with pytest.raises(PlanError):
        compute_plan(script, current_heads=("b",), target="heads", direction="sideways")  # type: ignore[arg-type]


def test_steps_carry_file_hashes_and_merge_flags(history: Path) -> None:
    script = script_directory(history)
    plan = compute_plan(script, current_heads=(), target="heads", direction="upgrade")
    merge = next(step for step in plan.steps if step.revision == "m")
    assert merge.is_merge and merge.down_revisions == ("c2", "d")
    assert all(len(step.sha256) == 64 and Path(step.path).exists() for step in plan.steps)
    assert next(s for s in plan.steps if s.revision == "x").dependencies == ("b",)
