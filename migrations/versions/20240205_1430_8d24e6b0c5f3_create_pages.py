"""create pages

Multilingual CMS pages; text fields are {"en": ..., "de": ...} JSON objects.

Revision ID: 8d24e6b0c5f3
Revises: 3f1c9a7e2b41
Create Date: 2024-02-05 14:30:07.902114

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision: str = "8d24e6b0c5f3"
down_revision: str | Sequence[str] | None = "3f1c9a7e2b41"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copy of the JSON type of this revision: JSON, JSONB on PostgreSQL.
JSON_VARIANT = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "pages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("slug", sa.String(length=255), nullable=False),
        sa.Column("title", JSON_VARIANT, nullable=False),
        sa.Column("content", JSON_VARIANT, nullable=True),
        # Pre-blocks HTML body; superseded by content_blocks, dropped in 9c41d7e2f0ab.
        sa.Column("legacy_html", sa.Text(), nullable=True),
        sa.Column("excerpt", JSON_VARIANT, nullable=True),
        sa.Column("meta_description", JSON_VARIANT, nullable=True),
        sa.Column("content_blocks", JSON_VARIANT, nullable=True),
        sa.Column("layout_config", JSON_VARIANT, nullable=True),
        sa.Column("template", sa.String(length=50), server_default="default", nullable=False),
        sa.Column("content_format", sa.String(length=20), server_default="legacy", nullable=False),
        sa.Column("status", sa.String(length=20), server_default="draft", nullable=False),
        sa.Column("is_featured", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("sort_order", sa.Integer(), server_default="0", nullable=False),
        sa.Column("seo_title", JSON_VARIANT, nullable=True),
        sa.Column("seo_keywords", JSON_VARIANT, nullable=True),
        sa.Column("canonical_url", sa.String(length=500), nullable=True),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("author_id", sa.Integer(), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["author_id"],
            ["admin_users.id"],
            name=op.f("fk_pages_author_id_admin_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pages")),
        sa.UniqueConstraint("slug", name=op.f("uq_pages_slug")),
    )
    op.create_index(op.f("ix_pages_author_id"), "pages", ["author_id"], unique=False)


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_index(op.f("ix_pages_author_id"), table_name="pages")
    op.drop_table("pages")
