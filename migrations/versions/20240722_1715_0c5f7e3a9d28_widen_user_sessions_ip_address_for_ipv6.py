"""widen user sessions ip address for ipv6

Safe type change: VARCHAR(15) -> VARCHAR(45) so IPv6 addresses fit. Widening never
loses data; ``batch_alter_table`` recreates the table on SQLite.

Revision ID: 0c5f7e3a9d28
Revises: 7a3d18be60f4
Create Date: 2024-07-22 17:15:08.560441

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0c5f7e3a9d28"
down_revision: str | Sequence[str] | None = "7a3d18be60f4"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _user_sessions(ip_length: int) -> sa.Table:
    """``user_sessions`` as it stands around this revision.

    Passed as ``copy_from`` so batch mode can recreate the table on SQLite without
    reflecting it, which also makes ``--sql`` (offline) mode work there.
    """
    return sa.Table(
        "user_sessions",
        sa.MetaData(),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("admin_user_id", sa.Integer(), nullable=False),
        sa.Column("session_token", sa.String(length=255), nullable=False),
        sa.Column("ip_address", sa.String(length=ip_length), nullable=True),
        sa.Column("user_agent", sa.Text(), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["admin_user_id"],
            ["admin_users.id"],
            name="fk_user_sessions_admin_user_id_admin_users",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_user_sessions"),
        sa.UniqueConstraint("session_token", name="uq_user_sessions_session_token"),
        sa.Index("ix_user_sessions_admin_user_id", "admin_user_id"),
    )


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table("user_sessions", copy_from=_user_sessions(15)) as batch_op:
        batch_op.alter_column(
            "ip_address",
            existing_type=sa.String(length=15),
            type_=sa.String(length=45),
            existing_nullable=True,
        )


def downgrade() -> None:
    """Downgrade schema."""
    # IPv6 addresses do not fit the old column: forget them rather than fail.
    user_sessions = sa.table("user_sessions", sa.column("ip_address", sa.String))
    op.execute(
        user_sessions.update()
        .where(sa.func.length(user_sessions.c.ip_address) > 15)
        .values(ip_address=None)
    )
    with op.batch_alter_table("user_sessions", copy_from=_user_sessions(45)) as batch_op:
        batch_op.alter_column(
            "ip_address",
            existing_type=sa.String(length=45),
            type_=sa.String(length=15),
            existing_nullable=True,
        )
