"""add consultant reviews earnings and availability

Marketplace branch: reviews and earnings (optionally per project) and weekly availability.

Revision ID: 4d72c0e9a8b3
Revises: f18a6d4b2c97
Create Date: 2024-08-27 15:02:11.486205

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "4d72c0e9a8b3"
down_revision: str | Sequence[str] | None = "f18a6d4b2c97"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "consultant_reviews",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("consultant_id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=True),
        sa.Column("reviewer_name", sa.String(length=200), nullable=False),
        sa.Column("reviewer_email", sa.String(length=255), nullable=True),
        sa.Column("rating", sa.SmallInteger(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("is_published", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["consultant_id"],
            ["consultants.id"],
            name=op.f("fk_consultant_reviews_consultant_id_consultants"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["consultant_projects.id"],
            name=op.f("fk_consultant_reviews_project_id_consultant_projects"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consultant_reviews")),
    )
    op.create_index(
        op.f("ix_consultant_reviews_consultant_id"),
        "consultant_reviews",
        ["consultant_id"],
        unique=False,
    )
    op.create_table(
        "consultant_earnings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("consultant_id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=True),
        sa.Column("amount", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("currency", sa.String(length=3), server_default="EUR", nullable=False),
        sa.Column(
            "platform_fee", sa.Numeric(precision=12, scale=2), server_default="0", nullable=False
        ),
        sa.Column("status", sa.String(length=20), server_default="pending", nullable=False),
        sa.Column("paid_out_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["consultant_id"],
            ["consultants.id"],
            name=op.f("fk_consultant_earnings_consultant_id_consultants"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["consultant_projects.id"],
            name=op.f("fk_consultant_earnings_project_id_consultant_projects"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consultant_earnings")),
    )
    op.create_index(
        op.f("ix_consultant_earnings_consultant_id"),
        "consultant_earnings",
        ["consultant_id"],
        unique=False,
    )
    op.create_table(
        "consultant_availability",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("consultant_id", sa.Integer(), nullable=False),
        sa.Column("weekday", sa.SmallInteger(), nullable=False),
        sa.Column("start_time", sa.Time(), nullable=False),
        sa.Column("end_time", sa.Time(), nullable=False),
        sa.Column("timezone", sa.String(length=50), server_default="UTC", nullable=False),
        sa.Column("is_active", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.ForeignKeyConstraint(
            ["consultant_id"],
            ["consultants.id"],
            name=op.f("fk_consultant_availability_consultant_id_consultants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consultant_availability")),
        sa.UniqueConstraint(
            "consultant_id", "weekday", "start_time", name="uq_consultant_availability_slot"
        ),
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table("consultant_availability")
    op.drop_index(op.f("ix_consultant_earnings_consultant_id"), table_name="consultant_earnings")
    op.drop_table("consultant_earnings")
    op.drop_index(op.f("ix_consultant_reviews_consultant_id"), table_name="consultant_reviews")
    op.drop_table("consultant_reviews")
