"""add admin users full name and backfill

Data migration: adds ``admin_users.full_name`` and fills it from first and last name
with plain SQL (``sa.table`` + ``op.execute``), so it also renders in ``--sql`` mode.

Revision ID: 7a3d18be60f4
Revises: e2c6a9174d05
Create Date: 2024-06-19 13:05:49.847310

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "7a3d18be60f4"
down_revision: str | Sequence[str] | None = "e2c6a9174d05"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# A lightweight table for the data migration; revisions never import ORM models.
admin_users = sa.table(
    "admin_users",
    sa.column("first_name", sa.String),
    sa.column("last_name", sa.String),
    sa.column("full_name", sa.String),
)


def upgrade() -> None:
    """Upgrade schema."""
    op.add_column("admin_users", sa.Column("full_name", sa.String(length=201), nullable=True))
    first = sa.func.coalesce(admin_users.c.first_name, "")
    last = sa.func.coalesce(admin_users.c.last_name, "")
    op.execute(
        admin_users.update()
        .where(admin_users.c.full_name.is_(None))
        .where(sa.or_(admin_users.c.first_name.is_not(None), admin_users.c.last_name.is_not(None)))
        .values(full_name=sa.func.trim(first + " " + last))
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_column("admin_users", "full_name")
