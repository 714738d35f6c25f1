"""add multilingual support tables

Translations, per-field multilingual content, translation memory, language preferences.

Revision ID: c47b2e81f90a
Revises: a61f0d93e7c2
Create Date: 2024-03-18 16:40:12.667021

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision: str = "c47b2e81f90a"
down_revision: str | Sequence[str] | None = "a61f0d93e7c2"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copy of the JSON type of this revision: JSON, JSONB on PostgreSQL.
JSON_VARIANT = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "translations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("namespace", sa.String(length=100), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("source_language", sa.String(length=5), server_default="en", nullable=False),
        sa.Column("target_language", sa.String(length=5), nullable=False),
        sa.Column("source_text", sa.Text(), nullable=False),
        sa.Column("translated_text", sa.Text(), nullable=True),
        sa.Column("context", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=20), server_default="pending", nullable=False),
        sa.Column("method", sa.String(length=20), server_default="manual", nullable=False),
        sa.Column("confidence_score", sa.Float(), nullable=True),
        sa.Column("translator_id", sa.Integer(), nullable=True),
        sa.Column("reviewer_id", sa.Integer(), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["reviewer_id"],
            ["admin_users.id"],
            name=op.f("fk_translations_reviewer_id_admin_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["translator_id"],
            ["admin_users.id"],
            name=op.f("fk_translations_translator_id_admin_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_translations")),
        sa.UniqueConstraint(
            "namespace", "key", "target_language", name="uq_translations_namespace_key_lang"
        ),
    )
    op.create_index(op.f("ix_translations_namespace"), "translations", ["namespace"], unique=False)
    op.create_table(
        "multilingual_content",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("content_type", sa.String(length=50), nullable=False),
        sa.Column("content_id", sa.Integer(), nullable=False),
        sa.Column("field_name", sa.String(length=100), nullable=False),
        sa.Column("language", sa.String(length=5), nullable=False),
        sa.Column("text_content", sa.Text(), nullable=True),
        sa.Column("html_content", sa.Text(), nullable=True),
        sa.Column("json_content", JSON_VARIANT, nullable=True),
        sa.Column("is_active", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["created_by_id"],
            ["admin_users.id"],
            name=op.f("fk_multilingual_content_created_by_id_admin_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_multilingual_content")),
        sa.UniqueConstraint(
            "content_type",
            "content_id",
            "field_name",
            "language",
            "version",
            name="uq_multilingual_content_field_lang_version",
        ),
    )
    op.create_index(
        "ix_multilingual_content_lookup",
        "multilingual_content",
        ["content_type", "content_id"],
        unique=False,
    )
    op.create_table(
        "translation_memory",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source_text", sa.Text(), nullable=False),
        sa.Column("translated_text", sa.Text(), nullable=False),
        sa.Column("source_language", sa.String(length=5), nullable=False),
        sa.Column("target_language", sa.String(length=5), nullable=False),
        sa.Column("domain", sa.String(length=100), nullable=True),
        sa.Column("context", sa.Text(), nullable=True),
        sa.Column("quality_score", sa.Float(), nullable=True),
        sa.Column("usage_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_used", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_translation_memory")),
    )
    op.create_index(
        "ix_translation_memory_langs",
        "translation_memory",
        ["source_language", "target_language"],
        unique=False,
    )
    op.create_table(
        "language_preferences",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("admin_user_id", sa.Integer(), nullable=True),
        sa.Column("session_id", sa.String(length=255), nullable=True),
        sa.Column("preferred_language", sa.String(length=5), server_default="en", nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["admin_user_id"],
            ["admin_users.id"],
            name=op.f("fk_language_preferences_admin_user_id_admin_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_language_preferences")),
        sa.UniqueConstraint("admin_user_id", name=op.f("uq_language_preferences_admin_user_id")),
    )
    op.create_index(
        op.f("ix_language_preferences_session_id"),
        "language_preferences",
        ["session_id"],
        unique=False,
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_index(op.f("ix_language_preferences_session_id"), table_name="language_preferences")
    op.drop_table("language_preferences")
    op.drop_index("ix_translation_memory_langs", table_name="translation_memory")
    op.drop_table("translation_memory")
    op.drop_index("ix_multilingual_content_lookup", table_name="multilingual_content")
    op.drop_table("multilingual_content")
    op.drop_index(op.f("ix_translations_namespace"), table_name="translations")
    op.drop_table("translations")
