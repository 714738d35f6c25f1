"""index pages by status and registrations by email

Indexes added later, after the listing queries of pages and the lead lookup by email
showed up as slow in production.

Revision ID: 6f0a2d8e5c37
Revises: 2b7f9c6e1d84
Create Date: 2025-02-11 16:26:41.093852

"""

from collections.abc import Sequence

from alembic import op

# revision identifiers, used by Alembic.
revision: str = "6f0a2d8e5c37"
down_revision: str | Sequence[str] | None = "2b7f9c6e1d84"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_index(
        "ix_pages_status_published_at", "pages", ["status", "published_at"], unique=False
    )
    op.create_index(
        op.f("ix_webinar_registrations_email"), "webinar_registrations", ["email"], unique=False
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_index(op.f("ix_webinar_registrations_email"), table_name="webinar_registrations")
    op.drop_index("ix_pages_status_published_at", table_name="pages")
