"""add careers portal tables

Careers portal: job applications (UUID ids) with audit log, status history and uploads.

Revision ID: 9e6b3f15c40d
Revises: 0c5f7e3a9d28
Create Date: 2024-09-09 13:48:35.720064

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision: str = "9e6b3f15c40d"
down_revision: str | Sequence[str] | None = "0c5f7e3a9d28"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copy of the JSON type of this revision: JSON, JSONB on PostgreSQL.
JSON_VARIANT = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "job_applications",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("position_title", sa.String(length=200), nullable=False),
        sa.Column("position_department", sa.String(length=100), nullable=True),
        sa.Column("position_location", sa.String(length=100), nullable=True),
        sa.Column(
            "position_type", sa.String(length=20), server_default="full_time", nullable=False
        ),
        sa.Column("first_name", sa.String(length=100), nullable=False),
        sa.Column("last_name", sa.String(length=100), nullable=False),
        sa.Column("email", sa.String(length=255), nullable=False),
        sa.Column("phone", sa.String(length=50), nullable=True),
        sa.Column("linkedin_profile", sa.String(length=500), nullable=True),
        sa.Column("github_profile", sa.String(length=500), nullable=True),
        sa.Column("cv_file_name", sa.String(length=255), nullable=True),
        sa.Column("cv_file_path", sa.String(length=500), nullable=True),
        sa.Column("cv_file_size", sa.Integer(), nullable=True),
        sa.Column("cv_mime_type", sa.String(length=100), nullable=True),
        sa.Column("cv_sha256", sa.String(length=64), nullable=True),
        sa.Column(
            "consent_data_processing", sa.Boolean(), server_default=sa.false(), nullable=False
        ),
        sa.Column(
            "consent_future_opportunities", sa.Boolean(), server_default=sa.false(), nullable=False
        ),
        sa.Column("consent_given_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("language", sa.String(length=5), server_default="en", nullable=False),
        sa.Column("status", sa.String(length=20), server_default="submitted", nullable=False),
        sa.Column("recruiter_notes", sa.Text(), nullable=True),
        sa.Column("recruiter_rating", sa.SmallInteger(), nullable=True),
        sa.Column("interview_date", sa.DateTime(timezone=True), nullable=True),
        sa.Column("offer_details", JSON_VARIANT, nullable=True),
        sa.Column("contact_history", JSON_VARIANT, nullable=True),
        sa.Column("retention_until", sa.Date(), nullable=True),
        sa.Column("anonymized_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_applications")),
    )
    op.create_index(op.f("ix_job_applications_email"), "job_applications", ["email"], unique=False)
    op.create_index(
        op.f("ix_job_applications_status"), "job_applications", ["status"], unique=False
    )
    op.create_table(
        "job_application_audit_logs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("application_id", sa.Uuid(), nullable=False),
        sa.Column("action", sa.String(length=50), nullable=False),
        sa.Column("performed_by", sa.String(length=255), nullable=True),
        sa.Column("details", JSON_VARIANT, nullable=True),
        sa.Column("ip_address", sa.String(length=45), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["application_id"],
            ["job_applications.id"],
            name=op.f("fk_job_application_audit_logs_application_id_job_applications"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_application_audit_logs")),
    )
    op.create_index(
        op.f("ix_job_application_audit_logs_application_id"),
        "job_application_audit_logs",
        ["application_id"],
        unique=False,
    )
    op.create_table(
        "application_status_history",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("application_id", sa.Uuid(), nullable=False),
        sa.Column("from_status", sa.String(length=20), nullable=True),
        sa.Column("to_status", sa.String(length=20), nullable=False),
        sa.Column("changed_by", sa.String(length=255), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column(
            "changed_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["application_id"],
            ["job_applications.id"],
            name=op.f("fk_application_status_history_application_id_job_applications"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_application_status_history")),
    )
    op.create_index(
        op.f("ix_application_status_history_application_id"),
        "application_status_history",
        ["application_id"],
        unique=False,
    )
    op.create_table(
        "application_upload_metadata",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("application_id", sa.Uuid(), nullable=False),
        sa.Column("original_filename", sa.String(length=255), nullable=False),
        sa.Column("stored_path", sa.String(length=500), nullable=False),
        sa.Column("file_size", sa.Integer(), nullable=False),
        sa.Column("mime_type", sa.String(length=100), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("scan_status", sa.String(length=20), server_default="pending", nullable=False),
        sa.Column(
            "uploaded_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["application_id"],
            ["job_applications.id"],
            name=op.f("fk_application_upload_metadata_application_id_job_applications"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_application_upload_metadata")),
    )
    op.create_index(
        op.f("ix_application_upload_metadata_application_id"),
        "application_upload_metadata",
        ["application_id"],
        unique=False,
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_index(
        op.f("ix_application_upload_metadata_application_id"),
        table_name="application_upload_metadata",
    )
    op.drop_table("application_upload_metadata")
    op.drop_index(
        op.f("ix_application_status_history_application_id"),
        table_name="application_status_history",
    )
    op.drop_table("application_status_history")
    op.drop_index(
        op.f("ix_job_application_audit_logs_application_id"),
        table_name="job_application_audit_logs",
    )
    op.drop_table("job_application_audit_logs")
    op.drop_index(op.f("ix_job_applications_status"), table_name="job_applications")
    op.drop_index(op.f("ix_job_applications_email"), table_name="job_applications")
    op.drop_table("job_applications")
