"""Audit: the application-wide audit log of Magnetiq2."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from magnetiq_schema.base import Base


class AuditLog(Base):
    """One audited action; ``performed_by_email`` is cached so it survives user deletion."""

    __tablename__ = "audit_logs"
    __table_args__ = (sa.Index("ix_audit_logs_resource", "resource_type", "resource_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    action: Mapped[str] = mapped_column(sa.String(100), index=True)
    resource_type: Mapped[str] = mapped_column(sa.String(50))
    resource_id: Mapped[str | None] = mapped_column(sa.String(100))
    performed_by_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("admin_users.id", ondelete="SET NULL"), index=True
    )
    performed_by_email: Mapped[str | None] = mapped_column(sa.String(255))
    ip_address: Mapped[str | None] = mapped_column(sa.String(45))
    user_agent: Mapped[str | None] = mapped_column(sa.Text)
    endpoint: Mapped[str | None] = mapped_column(sa.String(255))
    old_values: Mapped[dict[str, Any] | None]
    new_values: Mapped[dict[str, Any] | None]
    reason: Mapped[str | None] = mapped_column(sa.Text)
    timestamp: Mapped[dt.datetime] = mapped_column(server_default=sa.func.now(), index=True)
    session_id: Mapped[str | None] = mapped_column(sa.String(255))
    request_id: Mapped[str | None] = mapped_column(sa.String(64))
