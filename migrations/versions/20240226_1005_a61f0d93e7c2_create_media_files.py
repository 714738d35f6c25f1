"""create media files

The media library (uploads with SHA-256, multilingual alt texts, tags).

Revision ID: a61f0d93e7c2
Revises: 8d24e6b0c5f3
Create Date: 2024-02-26 10:05:44.150377

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision: str = "a61f0d93e7c2"
down_revision: str | Sequence[str] | None = "8d24e6b0c5f3"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copy of the JSON type of this revision: JSON, JSONB on PostgreSQL.
JSON_VARIANT = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "media_files",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("original_filename", sa.String(length=255), nullable=False),
        sa.Column("file_path", sa.String(length=500), nullable=False),
        sa.Column("file_size", sa.BigInteger(), nullable=False),
        sa.Column("mime_type", sa.String(length=100), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("title", JSON_VARIANT, nullable=True),
        sa.Column("alt_text", JSON_VARIANT, nullable=True),
        sa.Column("description", JSON_VARIANT, nullable=True),
        sa.Column("width", sa.Integer(), nullable=True),
        sa.Column("height", sa.Integer(), nullable=True),
        sa.Column("image_metadata", JSON_VARIANT, nullable=True),
        sa.Column("folder", sa.String(length=255), server_default="/", nullable=False),
        sa.Column("tags", JSON_VARIANT, nullable=True),
        sa.Column("uploaded_by_id", sa.Integer(), nullable=True),
        sa.Column("upload_ip", sa.String(length=45), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["uploaded_by_id"],
            ["admin_users.id"],
            name=op.f("fk_media_files_uploaded_by_id_admin_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_media_files")),
        sa.UniqueConstraint("filename", name=op.f("uq_media_files_filename")),
    )
    op.create_index(op.f("ix_media_files_sha256"), "media_files", ["sha256"], unique=False)
    op.create_index(
        op.f("ix_media_files_uploaded_by_id"), "media_files", ["uploaded_by_id"], unique=False
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_index(op.f("ix_media_files_uploaded_by_id"), table_name="media_files")
    op.drop_index(op.f("ix_media_files_sha256"), table_name="media_files")
    op.drop_table("media_files")
