"""Users and access: administrators of the CMS and their sessions."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from magnetiq_schema.base import Base, SoftDeleteMixin, TimestampMixin


class AdminUser(TimestampMixin, SoftDeleteMixin, Base):
    """A person who logs into the Magnetiq2 admin; ``role`` is admin/editor/viewer/..."""

    __tablename__ = "admin_users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(sa.String(255), unique=True)
    hashed_password: Mapped[str] = mapped_column(sa.String(255))
    first_name: Mapped[str | None] = mapped_column(sa.String(100))
    last_name: Mapped[str | None] = mapped_column(sa.String(100))
    full_name: Mapped[str | None] = mapped_column(sa.String(201))
    avatar_url: Mapped[str | None] = mapped_column(sa.String(500))
    timezone: Mapped[str] = mapped_column(sa.String(50), server_default="UTC")
    language: Mapped[str] = mapped_column(sa.String(5), server_default="en")
    role: Mapped[str] = mapped_column(sa.String(20), server_default="viewer", index=True)
    is_active: Mapped[bool] = mapped_column(server_default=sa.true())
    last_login: Mapped[dt.datetime | None]


class UserSession(Base):
    """A login session of an admin user, identified by an opaque token."""

    __tablename__ = "user_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    admin_user_id: Mapped[int] = mapped_column(
        sa.ForeignKey("admin_users.id", ondelete="CASCADE"), index=True
    )
    session_token: Mapped[str] = mapped_column(sa.String(255), unique=True)
    ip_address: Mapped[str | None] = mapped_column(sa.String(45))
    user_agent: Mapped[str | None] = mapped_column(sa.Text)
    expires_at: Mapped[dt.datetime]
    created_at: Mapped[dt.datetime] = mapped_column(server_default=sa.func.now())
