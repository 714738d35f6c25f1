"""Behaviour of individual revisions a team relies on: the data migration, the type
change and the shape of the history (branch label, merge, dated file names)."""

from __future__ import annotations

import datetime as dt
import re

import pytest
import sqlalchemy as sa
from pytest_alembic import MigrationContext

from tests.migrations.conftest import REPO_ROOT, revisions_in_order

BOOK_A_MEETING = "e2c6a9174d05"
FULL_NAME_BACKFILL = "7a3d18be60f4"
WIDEN_IP_ADDRESS = "0c5f7e3a9d28"
IPV6 = "2001:0db8:85a3:0000:0000:8a2e:0370:7334"


def _rows(engine: sa.Engine, sql: str) -> list[tuple[object, ...]]:
    with engine.connect() as connection:
        return [tuple(row) for row in connection.execute(sa.text(sql))]


def test_it_backfills_full_name_from_first_and_last_name(
    alembic_runner: MigrationContext, alembic_engine: sa.Engine
) -> None:
    alembic_runner.migrate_up_to(BOOK_A_MEETING)
    people = [("ada@example.com", "Ada", "Lovelace"), ("mono@example.com", "Cher", None)]
    for email, first, last in people:
        alembic_runner.insert_into(
            "admin_users",
            {"email": email, "hashed_password": "x", "first_name": first, "last_name": last},
        )
    alembic_runner.insert_into("admin_users", {"email": "anon@example.com", "hashed_password": "x"})

    alembic_runner.migrate_up_to(FULL_NAME_BACKFILL)

    rows = _rows(alembic_engine, "SELECT email, full_name FROM admin_users ORDER BY email")
    assert rows == [
        ("ada@example.com", "Ada Lovelace"),
        ("anon@example.com", None),
        ("mono@example.com", "Cher"),
    ]

    alembic_runner.migrate_down_to(BOOK_A_MEETING)
    columns = {c["name"] for c in sa.inspect(alembic_engine).get_columns("admin_users")}
    assert "full_name" not in columns
    assert len(_rows(alembic_engine, "SELECT id FROM admin_users")) == 3


def test_it_widens_ip_address_keeping_rows_and_narrows_back_forgetting_ipv6(
    alembic_runner: MigrationContext, alembic_engine: sa.Engine
) -> None:
    alembic_runner.migrate_up_to(FULL_NAME_BACKFILL)
    alembic_runner.insert_into(
        "admin_users", {"id": 1, "email": "ada@example.com", "hashed_password": "x"}
    )
    session = {"admin_user_id": 1, "expires_at": dt.datetime(2030, 1, 1, tzinfo=dt.UTC)}
    alembic_runner.insert_into(
        "user_sessions", {**session, "session_token": "v4", "ip_address": "192.168.100.200"}
    )

    alembic_runner.migrate_up_to(WIDEN_IP_ADDRESS)
    alembic_runner.insert_into(
        "user_sessions", {**session, "session_token": "v6", "ip_address": IPV6}
    )
    ip_column = next(
        c
        for c in sa.inspect(alembic_engine).get_columns("user_sessions")
        if c["name"] == "ip_address"
    )
    assert ip_column["type"].length == 45
    sql = "SELECT session_token, ip_address FROM user_sessions ORDER BY session_token"
    assert _rows(alembic_engine, sql) == [("v4", "192.168.100.200"), ("v6", IPV6)]

    alembic_runner.migrate_down_to(FULL_NAME_BACKFILL)
    assert _rows(alembic_engine, sql) == [("v4", "192.168.100.200"), ("v6", None)]


@pytest.mark.parametrize("alembic_engine", ["sqlite"], indirect=True)
def test_it_has_a_labelled_branch_merged_back_into_one_head(
    alembic_runner: MigrationContext,
) -> None:
    revisions = revisions_in_order()
    merges = [r for r in revisions if r.is_merge_point]
    labelled = [r for r in revisions if "marketplace" in r.branch_labels]
    assert len(revisions) >= 14
    assert len(merges) == 1
    assert labelled, "the marketplace branch label is missing"
    assert len(alembic_runner.heads) == 1


def test_it_names_every_revision_file_by_date_time_and_revision_id() -> None:
    pattern = re.compile(r"^20(24|25)\d{4}_\d{4}_(?P<rev>[0-9a-f]{12})_[a-z0-9_]+\.py$")
    for script in revisions_in_order():
        match = pattern.match(script.path.rsplit("/", 1)[-1])
        assert match, script.path
        assert match["rev"] == script.revision
        source = (REPO_ROOT / "migrations" / "versions" / match.string).read_text()
        assert "magnetiq_schema" not in source, f"{script.path} imports the live models"
        assert "def downgrade() -> None:" in source
