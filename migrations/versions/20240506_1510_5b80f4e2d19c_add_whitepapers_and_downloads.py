"""add whitepapers and downloads

Business operations, part 2: whitepapers as lead magnets and their downloads.

Revision ID: 5b80f4e2d19c
Revises: 1e9d5c3a7b68
Create Date: 2024-05-06 15:10:19.774580

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision: str = "5b80f4e2d19c"
down_revision: str | Sequence[str] | None = "1e9d5c3a7b68"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copy of the JSON type of this revision: JSON, JSONB on PostgreSQL.
JSON_VARIANT = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "whitepapers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("title", JSON_VARIANT, nullable=False),
        sa.Column("description", JSON_VARIANT, nullable=True),
        sa.Column("preview_text", JSON_VARIANT, nullable=True),
        sa.Column("slug", sa.String(length=255), nullable=False),
        sa.Column("file_id", sa.Integer(), nullable=True),
        sa.Column("thumbnail_id", sa.Integer(), nullable=True),
        sa.Column("category", sa.String(length=100), nullable=True),
        sa.Column("tags", JSON_VARIANT, nullable=True),
        sa.Column("industries", JSON_VARIANT, nullable=True),
        sa.Column("registration_required", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("is_lead_magnet", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("seo_title", JSON_VARIANT, nullable=True),
        sa.Column("seo_description", JSON_VARIANT, nullable=True),
        sa.Column("status", sa.String(length=20), server_default="draft", nullable=False),
        sa.Column("is_featured", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("author_id", sa.Integer(), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["author_id"],
            ["admin_users.id"],
            name=op.f("fk_whitepapers_author_id_admin_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["file_id"],
            ["media_files.id"],
            name=op.f("fk_whitepapers_file_id_media_files"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["thumbnail_id"],
            ["media_files.id"],
            name=op.f("fk_whitepapers_thumbnail_id_media_files"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_whitepapers")),
        sa.UniqueConstraint("slug", name=op.f("uq_whitepapers_slug")),
    )
    op.create_index(op.f("ix_whitepapers_category"), "whitepapers", ["category"], unique=False)
    op.create_table(
        "whitepaper_downloads",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("whitepaper_id", sa.Integer(), nullable=False),
        sa.Column("lead_name", sa.String(length=200), nullable=False),
        sa.Column("lead_email", sa.String(length=255), nullable=False),
        sa.Column("lead_company", sa.String(length=200), nullable=True),
        sa.Column("lead_phone", sa.String(length=50), nullable=True),
        sa.Column("validation_token", sa.String(length=64), nullable=True),
        sa.Column("download_token", sa.String(length=64), nullable=False),
        sa.Column("validated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("downloaded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("download_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["whitepaper_id"],
            ["whitepapers.id"],
            name=op.f("fk_whitepaper_downloads_whitepaper_id_whitepapers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_whitepaper_downloads")),
        sa.UniqueConstraint("download_token", name=op.f("uq_whitepaper_downloads_download_token")),
        sa.UniqueConstraint(
            "validation_token", name=op.f("uq_whitepaper_downloads_validation_token")
        ),
    )
    op.create_index(
        op.f("ix_whitepaper_downloads_lead_email"),
        "whitepaper_downloads",
        ["lead_email"],
        unique=False,
    )
    op.create_index(
        op.f("ix_whitepaper_downloads_whitepaper_id"),
        "whitepaper_downloads",
        ["whitepaper_id"],
        unique=False,
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_index(op.f("ix_whitepaper_downloads_whitepaper_id"), table_name="whitepaper_downloads")
    op.drop_index(op.f("ix_whitepaper_downloads_lead_email"), table_name="whitepaper_downloads")
    op.drop_table("whitepaper_downloads")
    op.drop_index(op.f("ix_whitepapers_category"), table_name="whitepapers")
    op.drop_table("whitepapers")
