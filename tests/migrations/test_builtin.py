"""pytest-alembic's built-in checks of the history, on PostgreSQL and on SQLite.

Single head, upgrade base -> head, models match the DDL the history builds
(``alembic check`` is clean), and every revision can be undone and redone.
"""

from pytest_alembic.tests import (
    test_model_definitions_match_ddl,
    test_single_head_revision,
    test_up_down_consistency,
    test_upgrade,
)

__all__ = [
    "test_model_definitions_match_ddl",
    "test_single_head_revision",
    "test_up_down_consistency",
    "test_upgrade",
]
