"""add webinars and registrations

Business operations, part 1: webinars and the people who register for them.

Revision ID: 1e9d5c3a7b68
Revises: c47b2e81f90a
Create Date: 2024-04-09 11:22:58.301946

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision: str = "1e9d5c3a7b68"
down_revision: str | Sequence[str] | None = "c47b2e81f90a"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copy of the JSON type of this revision: JSON, JSONB on PostgreSQL.
JSON_VARIANT = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "webinars",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("title", JSON_VARIANT, nullable=False),
        sa.Column("description", JSON_VARIANT, nullable=True),
        sa.Column("slug", sa.String(length=255), nullable=False),
        sa.Column("scheduled_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("duration_minutes", sa.Integer(), server_default="60", nullable=False),
        sa.Column("timezone", sa.String(length=50), server_default="UTC", nullable=False),
        sa.Column("max_participants", sa.Integer(), nullable=True),
        sa.Column("meeting_url", sa.String(length=500), nullable=True),
        sa.Column("recording_url", sa.String(length=500), nullable=True),
        sa.Column("presentation_file_id", sa.Integer(), nullable=True),
        sa.Column("presenter_avatar_id", sa.Integer(), nullable=True),
        sa.Column("presenter_name", sa.String(length=200), nullable=True),
        sa.Column("presenter_bio", JSON_VARIANT, nullable=True),
        sa.Column("status", sa.String(length=20), server_default="draft", nullable=False),
        sa.Column("registration_enabled", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("registration_deadline", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["presentation_file_id"],
            ["media_files.id"],
            name=op.f("fk_webinars_presentation_file_id_media_files"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["presenter_avatar_id"],
            ["media_files.id"],
            name=op.f("fk_webinars_presenter_avatar_id_media_files"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webinars")),
        sa.UniqueConstraint("slug", name=op.f("uq_webinars_slug")),
    )
    op.create_index(op.f("ix_webinars_scheduled_at"), "webinars", ["scheduled_at"], unique=False)
    op.create_table(
        "webinar_registrations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("webinar_id", sa.Integer(), nullable=False),
        sa.Column("first_name", sa.String(length=100), nullable=False),
        sa.Column("last_name", sa.String(length=100), nullable=False),
        sa.Column("email", sa.String(length=255), nullable=False),
        sa.Column("company", sa.String(length=200), nullable=True),
        sa.Column("job_title", sa.String(length=200), nullable=True),
        sa.Column("phone", sa.String(length=50), nullable=True),
        sa.Column("source", sa.String(length=100), nullable=True),
        sa.Column("utm_source", sa.String(length=100), nullable=True),
        sa.Column("utm_medium", sa.String(length=100), nullable=True),
        sa.Column("utm_campaign", sa.String(length=100), nullable=True),
        sa.Column("attended", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("attendance_minutes", sa.Integer(), nullable=True),
        sa.Column("reminder_email", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("reminder_sms", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column(
            "registered_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["webinar_id"],
            ["webinars.id"],
            name=op.f("fk_webinar_registrations_webinar_id_webinars"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webinar_registrations")),
        sa.UniqueConstraint("webinar_id", "email", name="uq_webinar_registrations_webinar_email"),
    )
    op.create_index(
        op.f("ix_webinar_registrations_webinar_id"),
        "webinar_registrations",
        ["webinar_id"],
        unique=False,
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_index(op.f("ix_webinar_registrations_webinar_id"), table_name="webinar_registrations")
    op.drop_table("webinar_registrations")
    op.drop_index(op.f("ix_webinars_scheduled_at"), table_name="webinars")
    op.drop_table("webinars")
