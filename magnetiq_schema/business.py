"""Business operations: webinars, whitepapers (lead magnets), meetings, consultations."""

from __future__ import annotations

import datetime as dt
import decimal

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from magnetiq_schema.base import Base, Multilingual, TimestampMixin


class Webinar(TimestampMixin, Base):
    """A scheduled webinar with its presenter; ``status`` is draft/published/completed..."""

    __tablename__ = "webinars"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[Multilingual]
    description: Mapped[Multilingual | None]
    slug: Mapped[str] = mapped_column(sa.String(255), unique=True)
    scheduled_at: Mapped[dt.datetime] = mapped_column(index=True)
    duration_minutes: Mapped[int] = mapped_column(server_default="60")
    timezone: Mapped[str] = mapped_column(sa.String(50), server_default="UTC")
    max_participants: Mapped[int | None]
    meeting_url: Mapped[str | None] = mapped_column(sa.String(500))
    recording_url: Mapped[str | None] = mapped_column(sa.String(500))
    presentation_file_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("media_files.id", ondelete="SET NULL")
    )
    presenter_avatar_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("media_files.id", ondelete="SET NULL")
    )
    presenter_name: Mapped[str | None] = mapped_column(sa.String(200))
    presenter_bio: Mapped[Multilingual | None]
    status: Mapped[str] = mapped_column(sa.String(20), server_default="draft")
    registration_enabled: Mapped[bool] = mapped_column(server_default=sa.true())
    registration_deadline: Mapped[dt.datetime | None]


class WebinarRegistration(Base):
    """A person registered for a webinar, with the marketing source of the lead."""

    __tablename__ = "webinar_registrations"
    __table_args__ = (
        sa.UniqueConstraint("webinar_id", "email", name="uq_webinar_registrations_webinar_email"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    webinar_id: Mapped[int] = mapped_column(
        sa.ForeignKey("webinars.id", ondelete="CASCADE"), index=True
    )
    first_name: Mapped[str] = mapped_column(sa.String(100))
    last_name: Mapped[str] = mapped_column(sa.String(100))
    email: Mapped[str] = mapped_column(sa.String(255), index=True)
    company: Mapped[str | None] = mapped_column(sa.String(200))
    job_title: Mapped[str | None] = mapped_column(sa.String(200))
    phone: Mapped[str | None] = mapped_column(sa.String(50))
    source: Mapped[str | None] = mapped_column(sa.String(100))
    utm_source: Mapped[str | None] = mapped_column(sa.String(100))
    utm_medium: Mapped[str | None] = mapped_column(sa.String(100))
    utm_campaign: Mapped[str | None] = mapped_column(sa.String(100))
    attended: Mapped[bool] = mapped_column(server_default=sa.false())
    attendance_minutes: Mapped[int | None]
    reminder_email: Mapped[bool] = mapped_column(server_default=sa.true())
    reminder_sms: Mapped[bool] = mapped_column(server_default=sa.false())
    registered_at: Mapped[dt.datetime] = mapped_column(server_default=sa.func.now())
    confirmed_at: Mapped[dt.datetime | None]


class Whitepaper(TimestampMixin, Base):
    """A downloadable whitepaper, usually a lead magnet behind a registration form."""

    __tablename__ = "whitepapers"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[Multilingual]
    description: Mapped[Multilingual | None]
    preview_text: Mapped[Multilingual | None]
    slug: Mapped[str] = mapped_column(sa.String(255), unique=True)
    file_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("media_files.id", ondelete="SET NULL")
    )
    thumbnail_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("media_files.id", ondelete="SET NULL")
    )
    category: Mapped[str | None] = mapped_column(sa.String(100), index=True)
    tags: Mapped[list[str] | None]
    industries: Mapped[list[str] | None]
    registration_required: Mapped[bool] = mapped_column(server_default=sa.true())
    is_lead_magnet: Mapped[bool] = mapped_column(server_default=sa.true())
    seo_title: Mapped[Multilingual | None]
    seo_description: Mapped[Multilingual | None]
    status: Mapped[str] = mapped_column(sa.String(20), server_default="draft")
    is_featured: Mapped[bool] = mapped_column(server_default=sa.false())
    author_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("admin_users.id", ondelete="SET NULL")
    )


class WhitepaperDownload(Base):
    """A lead who asked for a whitepaper; tokens validate the email and the download."""

    __tablename__ = "whitepaper_downloads"

    id: Mapped[int] = mapped_column(primary_key=True)
    whitepaper_id: Mapped[int] = mapped_column(
        sa.ForeignKey("whitepapers.id", ondelete="CASCADE"), index=True
    )
    lead_name: Mapped[str] = mapped_column(sa.String(200))
    lead_email: Mapped[str] = mapped_column(sa.String(255), index=True)
    lead_company: Mapped[str | None] = mapped_column(sa.String(200))
    lead_phone: Mapped[str | None] = mapped_column(sa.String(50))
    validation_token: Mapped[str | None] = mapped_column(sa.String(64), unique=True)
    download_token: Mapped[str] = mapped_column(sa.String(64), unique=True)
    validated_at: Mapped[dt.datetime | None]
    downloaded_at: Mapped[dt.datetime | None]
    download_count: Mapped[int] = mapped_column(server_default="0")
    created_at: Mapped[dt.datetime] = mapped_column(server_default=sa.func.now())


class BookAMeeting(TimestampMixin, Base):
    """A "book a meeting" contact request, assigned to an admin for follow-up."""

    __tablename__ = "book_a_meetings"

    id: Mapped[int] = mapped_column(primary_key=True)
    first_name: Mapped[str] = mapped_column(sa.String(100))
    last_name: Mapped[str] = mapped_column(sa.String(100))
    email: Mapped[str] = mapped_column(sa.String(255), index=True)
    company: Mapped[str | None] = mapped_column(sa.String(200))
    phone: Mapped[str | None] = mapped_column(sa.String(50))
    preferred_date: Mapped[dt.date | None] = mapped_column(sa.Date)
    preferred_time: Mapped[str | None] = mapped_column(sa.String(20))
    topic: Mapped[str | None] = mapped_column(sa.String(200))
    message: Mapped[str | None] = mapped_column(sa.Text)
    status: Mapped[str] = mapped_column(sa.String(20), server_default="new")
    assigned_to_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("admin_users.id", ondelete="SET NULL")
    )


class ConsultationBooking(TimestampMixin, Base):
    """A paid consultation with a marketplace consultant.

    ``status``: pending/confirmed/completed/cancelled/no_show; ``payment_status``:
    unpaid/paid/refunded.
    """

    __tablename__ = "consultation_bookings"

    id: Mapped[int] = mapped_column(primary_key=True)
    consultant_id: Mapped[int] = mapped_column(
        sa.ForeignKey("consultants.id", ondelete="RESTRICT"), index=True
    )
    client_name: Mapped[str] = mapped_column(sa.String(200))
    client_email: Mapped[str] = mapped_column(sa.String(255), index=True)
    client_company: Mapped[str | None] = mapped_column(sa.String(200))
    client_phone: Mapped[str | None] = mapped_column(sa.String(50))
    scheduled_at: Mapped[dt.datetime]
    duration_minutes: Mapped[int] = mapped_column(server_default="60")
    status: Mapped[str] = mapped_column(sa.String(20), server_default="pending", index=True)
    payment_status: Mapped[str] = mapped_column(sa.String(20), server_default="unpaid")
    amount: Mapped[decimal.Decimal | None] = mapped_column(sa.Numeric(10, 2))
    currency: Mapped[str] = mapped_column(sa.String(3), server_default="EUR")
    assigned_admin_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("admin_users.id", ondelete="SET NULL")
    )
