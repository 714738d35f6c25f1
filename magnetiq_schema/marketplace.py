"""Consultant marketplace: consultants and everything that belongs to one."""

from __future__ import annotations

import datetime as dt
import decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from magnetiq_schema.base import Base, Multilingual, TimestampMixin

_CONSULTANT_FK = "consultants.id"


class Consultant(TimestampMixin, Base):
    """A consultant who signed up through LinkedIn; ``kyc_status`` gates payouts."""

    __tablename__ = "consultants"

    id: Mapped[int] = mapped_column(primary_key=True)
    linkedin_url: Mapped[str | None] = mapped_column(sa.String(500))
    linkedin_id: Mapped[str | None] = mapped_column(sa.String(100), unique=True)
    email: Mapped[str] = mapped_column(sa.String(255), unique=True)
    first_name: Mapped[str] = mapped_column(sa.String(100))
    last_name: Mapped[str] = mapped_column(sa.String(100))
    headline: Mapped[Multilingual | None]
    location: Mapped[str | None] = mapped_column(sa.String(200))
    industry: Mapped[str | None] = mapped_column(sa.String(100), index=True)
    specializations: Mapped[list[str] | None]
    years_experience: Mapped[int | None]
    hourly_rate: Mapped[decimal.Decimal | None] = mapped_column(sa.Numeric(10, 2))
    currency: Mapped[str] = mapped_column(sa.String(3), server_default="EUR")
    availability_status: Mapped[str] = mapped_column(sa.String(20), server_default="available")
    languages: Mapped[list[str] | None]
    status: Mapped[str] = mapped_column(sa.String(20), server_default="pending", index=True)
    kyc_status: Mapped[str] = mapped_column(sa.String(20), server_default="not_started")
    is_featured: Mapped[bool] = mapped_column(server_default=sa.false())
    is_verified: Mapped[bool] = mapped_column(server_default=sa.false())
    average_rating: Mapped[decimal.Decimal | None] = mapped_column(sa.Numeric(3, 2))
    total_reviews: Mapped[int] = mapped_column(server_default="0")
    total_projects: Mapped[int] = mapped_column(server_default="0")
    total_earnings: Mapped[decimal.Decimal] = mapped_column(sa.Numeric(12, 2), server_default="0")


class ConsultantKyc(TimestampMixin, Base):
    """Identity and payout verification of a consultant (one row per consultant)."""

    __tablename__ = "consultant_kyc"

    id: Mapped[int] = mapped_column(primary_key=True)
    consultant_id: Mapped[int] = mapped_column(
        sa.ForeignKey(_CONSULTANT_FK, ondelete="CASCADE"), unique=True
    )
    document_type: Mapped[str | None] = mapped_column(sa.String(50))
    document_number_hash: Mapped[str | None] = mapped_column(sa.String(64))
    tax_id: Mapped[str | None] = mapped_column(sa.String(50))
    bank_account_iban: Mapped[str | None] = mapped_column(sa.String(34))
    status: Mapped[str] = mapped_column(sa.String(20), server_default="pending")
    verified_at: Mapped[dt.datetime | None]
    reviewer_notes: Mapped[str | None] = mapped_column(sa.Text)


class ConsultantProject(TimestampMixin, Base):
    """A project a consultant works on for a client."""

    __tablename__ = "consultant_projects"

    id: Mapped[int] = mapped_column(primary_key=True)
    consultant_id: Mapped[int] = mapped_column(
        sa.ForeignKey(_CONSULTANT_FK, ondelete="CASCADE"), index=True
    )
    title: Mapped[str] = mapped_column(sa.String(255))
    description: Mapped[str | None] = mapped_column(sa.Text)
    client_name: Mapped[str | None] = mapped_column(sa.String(200))
    status: Mapped[str] = mapped_column(sa.String(20), server_default="proposed")
    budget: Mapped[decimal.Decimal | None] = mapped_column(sa.Numeric(12, 2))
    currency: Mapped[str] = mapped_column(sa.String(3), server_default="EUR")
    started_at: Mapped[dt.datetime | None]
    completed_at: Mapped[dt.datetime | None]


class ConsultantReview(Base):
    """A client's rating of a consultant, optionally tied to a project."""

    __tablename__ = "consultant_reviews"

    id: Mapped[int] = mapped_column(primary_key=True)
    consultant_id: Mapped[int] = mapped_column(
        sa.ForeignKey(_CONSULTANT_FK, ondelete="CASCADE"), index=True
    )
    project_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("consultant_projects.id", ondelete="SET NULL")
    )
    reviewer_name: Mapped[str] = mapped_column(sa.String(200))
    reviewer_email: Mapped[str | None] = mapped_column(sa.String(255))
    rating: Mapped[int] = mapped_column(sa.SmallInteger)
    comment: Mapped[str | None] = mapped_column(sa.Text)
    is_published: Mapped[bool] = mapped_column(server_default=sa.false())
    created_at: Mapped[dt.datetime] = mapped_column(server_default=sa.func.now())


class ConsultantEarning(Base):
    """Money a consultant earned, optionally for a project, and its payout state."""

    __tablename__ = "consultant_earnings"

    id: Mapped[int] = mapped_column(primary_key=True)
    consultant_id: Mapped[int] = mapped_column(
        sa.ForeignKey(_CONSULTANT_FK, ondelete="CASCADE"), index=True
    )
    project_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("consultant_projects.id", ondelete="SET NULL")
    )
    amount: Mapped[decimal.Decimal] = mapped_column(sa.Numeric(12, 2))
    currency: Mapped[str] = mapped_column(sa.String(3), server_default="EUR")
    platform_fee: Mapped[decimal.Decimal] = mapped_column(sa.Numeric(12, 2), server_default="0")
    status: Mapped[str] = mapped_column(sa.String(20), server_default="pending")
    paid_out_at: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = mapped_column(server_default=sa.func.now())


class ConsultantAvailability(Base):
    """A weekly time slot in which a consultant can be booked."""

    __tablename__ = "consultant_availability"
    __table_args__ = (
        sa.UniqueConstraint(
            "consultant_id", "weekday", "start_time", name="uq_consultant_availability_slot"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    consultant_id: Mapped[int] = mapped_column(sa.ForeignKey(_CONSULTANT_FK, ondelete="CASCADE"))
    weekday: Mapped[int] = mapped_column(sa.SmallInteger)
    start_time: Mapped[dt.time] = mapped_column(sa.Time)
    end_time: Mapped[dt.time] = mapped_column(sa.Time)
    timezone: Mapped[str] = mapped_column(sa.String(50), server_default="UTC")
    is_active: Mapped[bool] = mapped_column(server_default=sa.true())


class ConsultantPortfolio(TimestampMixin, Base):
    """A showcase item of a consultant's past work."""

    __tablename__ = "consultant_portfolio"

    id: Mapped[int] = mapped_column(primary_key=True)
    consultant_id: Mapped[int] = mapped_column(
        sa.ForeignKey(_CONSULTANT_FK, ondelete="CASCADE"), index=True
    )
    title: Mapped[Multilingual]
    description: Mapped[Multilingual | None]
    project_url: Mapped[str | None] = mapped_column(sa.String(500))
    image_url: Mapped[str | None] = mapped_column(sa.String(500))
    technologies: Mapped[list[str] | None]
    details: Mapped[dict[str, Any] | None]
    sort_order: Mapped[int] = mapped_column(server_default="0")
