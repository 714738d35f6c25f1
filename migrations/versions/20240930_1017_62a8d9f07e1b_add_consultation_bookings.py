"""add consultation bookings

Marketplace branch: paid consultations booked with a consultant.

Revision ID: 62a8d9f07e1b
Revises: 4d72c0e9a8b3
Create Date: 2024-09-30 10:17:52.339148

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "62a8d9f07e1b"
down_revision: str | Sequence[str] | None = "4d72c0e9a8b3"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "consultation_bookings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("consultant_id", sa.Integer(), nullable=False),
        sa.Column("client_name", sa.String(length=200), nullable=False),
        sa.Column("client_email", sa.String(length=255), nullable=False),
        sa.Column("client_company", sa.String(length=200), nullable=True),
        sa.Column("client_phone", sa.String(length=50), nullable=True),
        sa.Column("scheduled_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("duration_minutes", sa.Integer(), server_default="60", nullable=False),
        sa.Column("status", sa.String(length=20), server_default="pending", nullable=False),
        sa.Column("payment_status", sa.String(length=20), server_default="unpaid", nullable=False),
        sa.Column("amount", sa.Numeric(precision=10, scale=2), nullable=True),
        sa.Column("currency", sa.String(length=3), server_default="EUR", nullable=False),
        sa.Column("assigned_admin_id", sa.Integer(), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["assigned_admin_id"],
            ["admin_users.id"],
            name=op.f("fk_consultation_bookings_assigned_admin_id_admin_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["consultant_id"],
            ["consultants.id"],
            name=op.f("fk_consultation_bookings_consultant_id_consultants"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consultation_bookings")),
    )
    op.create_index(
        op.f("ix_consultation_bookings_client_email"),
        "consultation_bookings",
        ["client_email"],
        unique=False,
    )
    op.create_index(
        op.f("ix_consultation_bookings_consultant_id"),
        "consultation_bookings",
        ["consultant_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_consultation_bookings_status"), "consultation_bookings", ["status"], unique=False
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_index(op.f("ix_consultation_bookings_status"), table_name="consultation_bookings")
    op.drop_index(
        op.f("ix_consultation_bookings_consultant_id"), table_name="consultation_bookings"
    )
    op.drop_index(op.f("ix_consultation_bookings_client_email"), table_name="consultation_bookings")
    op.drop_table("consultation_bookings")
