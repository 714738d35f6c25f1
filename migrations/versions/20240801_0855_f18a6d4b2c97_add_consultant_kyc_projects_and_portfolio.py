"""add consultant kyc projects and portfolio

Marketplace branch: KYC verification, projects and portfolio of a consultant.

Revision ID: f18a6d4b2c97
Revises: b94e07c2a5d1
Create Date: 2024-08-01 08:55:40.093317

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision: str = "f18a6d4b2c97"
down_revision: str | Sequence[str] | None = "b94e07c2a5d1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copy of the JSON type of this revision: JSON, JSONB on PostgreSQL.
JSON_VARIANT = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "consultant_kyc",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("consultant_id", sa.Integer(), nullable=False),
        sa.Column("document_type", sa.String(length=50), nullable=True),
        sa.Column("document_number_hash", sa.String(length=64), nullable=True),
        sa.Column("tax_id", sa.String(length=50), nullable=True),
        sa.Column("bank_account_iban", sa.String(length=34), nullable=True),
        sa.Column("status", sa.String(length=20), server_default="pending", nullable=False),
        sa.Column("verified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reviewer_notes", sa.Text(), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["consultant_id"],
            ["consultants.id"],
            name=op.f("fk_consultant_kyc_consultant_id_consultants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consultant_kyc")),
        sa.UniqueConstraint("consultant_id", name=op.f("uq_consultant_kyc_consultant_id")),
    )
    op.create_table(
        "consultant_projects",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("consultant_id", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=255), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("client_name", sa.String(length=200), nullable=True),
        sa.Column("status", sa.String(length=20), server_default="proposed", nullable=False),
        sa.Column("budget", sa.Numeric(precision=12, scale=2), nullable=True),
        sa.Column("currency", sa.String(length=3), server_default="EUR", nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["consultant_id"],
            ["consultants.id"],
            name=op.f("fk_consultant_projects_consultant_id_consultants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consultant_projects")),
    )
    op.create_index(
        op.f("ix_consultant_projects_consultant_id"),
        "consultant_projects",
        ["consultant_id"],
        unique=False,
    )
    op.create_table(
        "consultant_portfolio",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("consultant_id", sa.Integer(), nullable=False),
        sa.Column("title", JSON_VARIANT, nullable=False),
        sa.Column("description", JSON_VARIANT, nullable=True),
        sa.Column("project_url", sa.String(length=500), nullable=True),
        sa.Column("image_url", sa.String(length=500), nullable=True),
        sa.Column("technologies", JSON_VARIANT, nullable=True),
        sa.Column("details", JSON_VARIANT, nullable=True),
        sa.Column("sort_order", sa.Integer(), server_default="0", nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["consultant_id"],
            ["consultants.id"],
            name=op.f("fk_consultant_portfolio_consultant_id_consultants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consultant_portfolio")),
    )
    op.create_index(
        op.f("ix_consultant_portfolio_consultant_id"),
        "consultant_portfolio",
        ["consultant_id"],
        unique=False,
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_index(op.f("ix_consultant_portfolio_consultant_id"), table_name="consultant_portfolio")
    op.drop_table("consultant_portfolio")
    op.drop_index(op.f("ix_consultant_projects_consultant_id"), table_name="consultant_projects")
    op.drop_table("consultant_projects")
    op.drop_table("consultant_kyc")
