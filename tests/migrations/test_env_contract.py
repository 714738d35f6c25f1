"""The contract of ``migrations/env.py`` that the dashboard's worker relies on.

A caller passes a sync ``Connection`` in ``config.attributes["connection"]`` and
extra ``context.configure`` keywords in ``config.attributes["context_options"]``;
env.py must use both and must not touch the caller's logging configuration.
"""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa
from alembic import command

from tests.migrations.conftest import make_alembic_config, revisions_in_order


def test_it_runs_on_the_passed_connection_with_the_callers_context_options(
    alembic_engine: sa.Engine,
) -> None:
    applied: list[str] = []

    def on_version_apply(*, step: Any, **_: Any) -> None:
        applied.append(step.up_revision_id)

    root_handlers = list(logging.getLogger().handlers)
    alembic_logger_level = logging.getLogger("alembic").level

    with alembic_engine.connect() as connection:
        config = make_alembic_config(connection)
        config.attributes["context_options"] = {
            "on_version_apply": on_version_apply,
            "version_table": "magnetiq_version",
            "transaction_per_migration": True,
        }
        command.upgrade(config, "heads")
        connection.commit()

    assert applied == [script.revision for script in revisions_in_order()]
    tables = set(sa.inspect(alembic_engine).get_table_names())
    assert "magnetiq_version" in tables
    assert "alembic_version" not in tables
    assert {"admin_users", "consultants", "job_applications", "audit_logs"} <= tables
    assert logging.getLogger().handlers == root_handlers
    assert logging.getLogger("alembic").level == alembic_logger_level
