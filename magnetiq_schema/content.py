"""Content: multilingual pages and the media library."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from magnetiq_schema.base import Base, Multilingual, SoftDeleteMixin, TimestampMixin


class Page(TimestampMixin, SoftDeleteMixin, Base):
    """A CMS page; text fields are ``{"en": ..., "de": ...}`` objects.

    ``content_format`` is ``legacy``, ``blocks`` or ``portable_text``; ``status`` is
    ``draft``, ``published``, ``archived``...
    """

    __tablename__ = "pages"
    __table_args__ = (sa.Index("ix_pages_status_published_at", "status", "published_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(sa.String(255), unique=True)
    title: Mapped[Multilingual]
    content: Mapped[Multilingual | None]
    excerpt: Mapped[Multilingual | None]
    meta_description: Mapped[Multilingual | None]
    content_blocks: Mapped[dict[str, Any] | None]
    layout_config: Mapped[dict[str, Any] | None]
    template: Mapped[str] = mapped_column(sa.String(50), server_default="default")
    content_format: Mapped[str] = mapped_column(sa.String(20), server_default="legacy")
    status: Mapped[str] = mapped_column(sa.String(20), server_default="draft")
    is_featured: Mapped[bool] = mapped_column(server_default=sa.false())
    sort_order: Mapped[int] = mapped_column(server_default="0")
    seo_title: Mapped[Multilingual | None]
    seo_keywords: Mapped[Multilingual | None]
    canonical_url: Mapped[str | None] = mapped_column(sa.String(500))
    published_at: Mapped[dt.datetime | None]
    author_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("admin_users.id", ondelete="SET NULL"), index=True
    )


class MediaFile(TimestampMixin, SoftDeleteMixin, Base):
    """An uploaded file; ``file_size`` is in bytes (BigInteger since 2024-08)."""

    __tablename__ = "media_files"

    id: Mapped[int] = mapped_column(primary_key=True)
    filename: Mapped[str] = mapped_column(sa.String(255), unique=True)
    original_filename: Mapped[str] = mapped_column(sa.String(255))
    file_path: Mapped[str] = mapped_column(sa.String(500))
    file_size: Mapped[int] = mapped_column(sa.BigInteger)
    mime_type: Mapped[str] = mapped_column(sa.String(100))
    sha256: Mapped[str] = mapped_column(sa.String(64), index=True)
    title: Mapped[Multilingual | None]
    alt_text: Mapped[Multilingual | None]
    description: Mapped[Multilingual | None]
    width: Mapped[int | None]
    height: Mapped[int | None]
    image_metadata: Mapped[dict[str, Any] | None]
    folder: Mapped[str] = mapped_column(sa.String(255), server_default="/")
    tags: Mapped[list[str] | None]
    uploaded_by_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("admin_users.id", ondelete="SET NULL"), index=True
    )
    upload_ip: Mapped[str | None] = mapped_column(sa.String(45))
