"""Drift at head on PostgreSQL: a hand-added column is drift; an untouched target has none."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command

from dashboard.migrator.drift import draft_revision_file, drift_compare
from tests.migrator.environments_support import alembic_config, write_history


def _models() -> sa.MetaData:
    """The models the generated history reaches at its heads."""
    metadata = sa.MetaData()
    sa.Table(
        "users",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("first", sa.String(50)),
        sa.Column("email", sa.String(200), nullable=False),
        sa.Column("full_name", sa.String(120)),
    )
    sa.Table(
        "pages",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("slug", sa.String(80), index=True),
    )
    sa.Table(
        "audit_log",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("what", sa.Text),
    )
    return metadata


@pytest.fixture
def at_head(tmp_path: Path, postgres_url: str) -> str:
    command.upgrade(alembic_config(write_history(tmp_path / "h"), postgres_url), "heads")
    return postgres_url


def test_an_untouched_target_at_head_has_no_drift(at_head: str) -> None:
    report = drift_compare(at_head, _models())
    assert report.operations == ()
    assert not report.has_drift


def test_a_column_added_by_hand_is_drift_with_a_draft_revision(at_head: str) -> None:
    engine = sa.create_engine(at_head)
    with engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE users ADD COLUMN nickname varchar(40)"))
        conn.execute(sa.text("ALTER TABLE pages ALTER COLUMN slug TYPE varchar(200)"))
    engine.dispose()
    report = drift_compare(at_head, _models())
    assert "column users.nickname is only in the database" in report.operations
    assert any("pages.slug: type" in line for line in report.operations)
    assert "op.drop_column('users', 'nickname')" in report.python
    draft = draft_revision_file(report=report)
    compile(draft, "draft.py", "exec")
    assert "renames" in draft and "op.drop_column('users', 'nickname')" in draft
