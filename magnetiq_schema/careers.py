"""Careers portal: job applications (UUID ids) and their audit/status/upload trails."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from magnetiq_schema.base import Base, TimestampMixin

_APPLICATION_FK = "job_applications.id"


class JobApplication(TimestampMixin, Base):
    """An application with CV facts, consents and GDPR retention dates."""

    __tablename__ = "job_applications"

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True)
    position_title: Mapped[str] = mapped_column(sa.String(200))
    position_department: Mapped[str | None] = mapped_column(sa.String(100))
    position_location: Mapped[str | None] = mapped_column(sa.String(100))
    position_type: Mapped[str] = mapped_column(sa.String(20), server_default="full_time")
    first_name: Mapped[str] = mapped_column(sa.String(100))
    last_name: Mapped[str] = mapped_column(sa.String(100))
    email: Mapped[str] = mapped_column(sa.String(255), index=True)
    phone: Mapped[str | None] = mapped_column(sa.String(50))
    linkedin_profile: Mapped[str | None] = mapped_column(sa.String(500))
    github_profile: Mapped[str | None] = mapped_column(sa.String(500))
    cv_file_name: Mapped[str | None] = mapped_column(sa.String(255))
    cv_file_path: Mapped[str | None] = mapped_column(sa.String(500))
    cv_file_size: Mapped[int | None]
    cv_mime_type: Mapped[str | None] = mapped_column(sa.String(100))
    cv_sha256: Mapped[str | None] = mapped_column(sa.String(64))
    consent_data_processing: Mapped[bool] = mapped_column(server_default=sa.false())
    consent_future_opportunities: Mapped[bool] = mapped_column(server_default=sa.false())
    consent_given_at: Mapped[dt.datetime | None]
    language: Mapped[str] = mapped_column(sa.String(5), server_default="en")
    status: Mapped[str] = mapped_column(sa.String(20), server_default="submitted", index=True)
    recruiter_notes: Mapped[str | None] = mapped_column(sa.Text)
    recruiter_rating: Mapped[int | None] = mapped_column(sa.SmallInteger)
    interview_date: Mapped[dt.datetime | None]
    offer_details: Mapped[dict[str, Any] | None]
    contact_history: Mapped[list[dict[str, Any]] | None]
    retention_until: Mapped[dt.date | None] = mapped_column(sa.Date)
    anonymized_at: Mapped[dt.datetime | None]


class JobApplicationAuditLog(Base):
    """Who did what to an application (GDPR accountability)."""

    __tablename__ = "job_application_audit_logs"

    id: Mapped[int] = mapped_column(primary_key=True)
    application_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey(_APPLICATION_FK, ondelete="CASCADE"), index=True
    )
    action: Mapped[str] = mapped_column(sa.String(50))
    performed_by: Mapped[str | None] = mapped_column(sa.String(255))
    details: Mapped[dict[str, Any] | None]
    ip_address: Mapped[str | None] = mapped_column(sa.String(45))
    created_at: Mapped[dt.datetime] = mapped_column(server_default=sa.func.now())


class ApplicationStatusHistory(Base):
    """One status change of an application."""

    __tablename__ = "application_status_history"

    id: Mapped[int] = mapped_column(primary_key=True)
    application_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey(_APPLICATION_FK, ondelete="CASCADE"), index=True
    )
    from_status: Mapped[str | None] = mapped_column(sa.String(20))
    to_status: Mapped[str] = mapped_column(sa.String(20))
    changed_by: Mapped[str | None] = mapped_column(sa.String(255))
    note: Mapped[str | None] = mapped_column(sa.Text)
    changed_at: Mapped[dt.datetime] = mapped_column(server_default=sa.func.now())


class ApplicationUploadMetadata(Base):
    """Facts of one uploaded file of an application, including the virus scan."""

    __tablename__ = "application_upload_metadata"

    id: Mapped[int] = mapped_column(primary_key=True)
    application_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey(_APPLICATION_FK, ondelete="CASCADE"), index=True
    )
    original_filename: Mapped[str] = mapped_column(sa.String(255))
    stored_path: Mapped[str] = mapped_column(sa.String(500))
    file_size: Mapped[int]
    mime_type: Mapped[str] = mapped_column(sa.String(100))
    sha256: Mapped[str] = mapped_column(sa.String(64))
    scan_status: Mapped[str] = mapped_column(sa.String(20), server_default="pending")
    uploaded_at: Mapped[dt.datetime] = mapped_column(server_default=sa.func.now())
