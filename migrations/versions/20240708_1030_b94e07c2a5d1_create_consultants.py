"""create consultants

Start of the consultant marketplace, developed on the branch labelled ``marketplace``.

Revision ID: b94e07c2a5d1
Revises: 7a3d18be60f4
Create Date: 2024-07-08 10:30:26.514882

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision: str = "b94e07c2a5d1"
down_revision: str | Sequence[str] | None = "7a3d18be60f4"
branch_labels: str | Sequence[str] | None = ("marketplace",)
depends_on: str | Sequence[str] | None = None

# Frozen copy of the JSON type of this revision: JSON, JSONB on PostgreSQL.
JSON_VARIANT = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "consultants",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("linkedin_url", sa.String(length=500), nullable=True),
        sa.Column("linkedin_id", sa.String(length=100), nullable=True),
        sa.Column("email", sa.String(length=255), nullable=False),
        sa.Column("first_name", sa.String(length=100), nullable=False),
        sa.Column("last_name", sa.String(length=100), nullable=False),
        sa.Column("headline", JSON_VARIANT, nullable=True),
        sa.Column("location", sa.String(length=200), nullable=True),
        sa.Column("industry", sa.String(length=100), nullable=True),
        sa.Column("specializations", JSON_VARIANT, nullable=True),
        sa.Column("years_experience", sa.Integer(), nullable=True),
        sa.Column("hourly_rate", sa.Numeric(precision=10, scale=2), nullable=True),
        sa.Column("currency", sa.String(length=3), server_default="EUR", nullable=False),
        sa.Column(
            "availability_status", sa.String(length=20), server_default="available", nullable=False
        ),
        sa.Column("languages", JSON_VARIANT, nullable=True),
        sa.Column("status", sa.String(length=20), server_default="pending", nullable=False),
        sa.Column("kyc_status", sa.String(length=20), server_default="not_started", nullable=False),
        sa.Column("is_featured", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("is_verified", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("average_rating", sa.Numeric(precision=3, scale=2), nullable=True),
        sa.Column("total_reviews", sa.Integer(), server_default="0", nullable=False),
        sa.Column("total_projects", sa.Integer(), server_default="0", nullable=False),
        sa.Column(
            "total_earnings", sa.Numeric(precision=12, scale=2), server_default="0", nullable=False
        ),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consultants")),
        sa.UniqueConstraint("email", name=op.f("uq_consultants_email")),
        sa.UniqueConstraint("linkedin_id", name=op.f("uq_consultants_linkedin_id")),
    )
    op.create_index(op.f("ix_consultants_industry"), "consultants", ["industry"], unique=False)
    op.create_index(op.f("ix_consultants_status"), "consultants", ["status"], unique=False)


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_index(op.f("ix_consultants_status"), table_name="consultants")
    op.drop_index(op.f("ix_consultants_industry"), table_name="consultants")
    op.drop_table("consultants")
