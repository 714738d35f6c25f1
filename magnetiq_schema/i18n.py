"""Multilingual support: UI translations, per-field content, translation memory."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from magnetiq_schema.base import Base, TimestampMixin


class Translation(TimestampMixin, Base):
    """One translated string of a namespace (``status``: pending/translated/reviewed)."""

    __tablename__ = "translations"
    __table_args__ = (
        sa.UniqueConstraint(
            "namespace", "key", "target_language", name="uq_translations_namespace_key_lang"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    namespace: Mapped[str] = mapped_column(sa.String(100), index=True)
    key: Mapped[str] = mapped_column(sa.String(255))
    source_language: Mapped[str] = mapped_column(sa.String(5), server_default="en")
    target_language: Mapped[str] = mapped_column(sa.String(5))
    source_text: Mapped[str] = mapped_column(sa.Text)
    translated_text: Mapped[str | None] = mapped_column(sa.Text)
    context: Mapped[str | None] = mapped_column(sa.Text)
    status: Mapped[str] = mapped_column(sa.String(20), server_default="pending")
    method: Mapped[str] = mapped_column(sa.String(20), server_default="manual")
    confidence_score: Mapped[float | None] = mapped_column(sa.Float)
    translator_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("admin_users.id", ondelete="SET NULL")
    )
    reviewer_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("admin_users.id", ondelete="SET NULL")
    )


class MultilingualContent(TimestampMixin, Base):
    """A field of any content row in one language, versioned."""

    __tablename__ = "multilingual_content"
    __table_args__ = (
        sa.UniqueConstraint(
            "content_type",
            "content_id",
            "field_name",
            "language",
            "version",
            name="uq_multilingual_content_field_lang_version",
        ),
        sa.Index("ix_multilingual_content_lookup", "content_type", "content_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    content_type: Mapped[str] = mapped_column(sa.String(50))
    content_id: Mapped[int]
    field_name: Mapped[str] = mapped_column(sa.String(100))
    language: Mapped[str] = mapped_column(sa.String(5))
    text_content: Mapped[str | None] = mapped_column(sa.Text)
    html_content: Mapped[str | None] = mapped_column(sa.Text)
    json_content: Mapped[dict[str, Any] | None]
    is_active: Mapped[bool] = mapped_column(server_default=sa.true())
    version: Mapped[int] = mapped_column(server_default="1")
    created_by_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("admin_users.id", ondelete="SET NULL")
    )


class TranslationMemory(Base):
    """A reusable source/target sentence pair with its quality and usage."""

    __tablename__ = "translation_memory"
    __table_args__ = (
        sa.Index("ix_translation_memory_langs", "source_language", "target_language"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    source_text: Mapped[str] = mapped_column(sa.Text)
    translated_text: Mapped[str] = mapped_column(sa.Text)
    source_language: Mapped[str] = mapped_column(sa.String(5))
    target_language: Mapped[str] = mapped_column(sa.String(5))
    domain: Mapped[str | None] = mapped_column(sa.String(100))
    context: Mapped[str | None] = mapped_column(sa.Text)
    quality_score: Mapped[float | None] = mapped_column(sa.Float)
    usage_count: Mapped[int] = mapped_column(server_default="0")
    last_used: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = mapped_column(server_default=sa.func.now())


class LanguagePreference(TimestampMixin, Base):
    """Preferred language of an admin user or of an anonymous session."""

    __tablename__ = "language_preferences"

    id: Mapped[int] = mapped_column(primary_key=True)
    admin_user_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("admin_users.id", ondelete="CASCADE"), unique=True
    )
    session_id: Mapped[str | None] = mapped_column(sa.String(255), index=True)
    preferred_language: Mapped[str] = mapped_column(sa.String(5), server_default="en")
