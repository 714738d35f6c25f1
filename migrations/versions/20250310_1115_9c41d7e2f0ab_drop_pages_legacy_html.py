"""drop pages legacy_html

Every page was converted to content blocks (content_format 'blocks' or
'portable_text'); the pre-blocks HTML body is no longer read anywhere.
Destructive: the column and its data are gone after this revision. The
downgrade brings the column back empty; restore from a backup if the HTML is
needed again.

Revision ID: 9c41d7e2f0ab
Revises: 6f0a2d8e5c37
Create Date: 2025-03-10 11:15:22.480113

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "9c41d7e2f0ab"
down_revision: str | Sequence[str] | None = "6f0a2d8e5c37"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    # Plain ALTER TABLE ... DROP COLUMN: PostgreSQL and SQLite >= 3.35 both have
    # it, and it keeps offline (--sql) mode working on SQLite (no reflection).
    op.drop_column("pages", "legacy_html")


def downgrade() -> None:
    """Downgrade schema."""
    op.add_column("pages", sa.Column("legacy_html", sa.Text(), nullable=True))
