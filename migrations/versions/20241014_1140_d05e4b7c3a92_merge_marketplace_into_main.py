"""merge marketplace into main

Merge revision: joins the ``marketplace`` branch with the main line (careers).
Nothing to change in the schema; both parents already did their work.

Revision ID: d05e4b7c3a92
Revises: 9e6b3f15c40d, 62a8d9f07e1b
Create Date: 2024-10-14 11:40:16.208753

"""

from collections.abc import Sequence

# revision identifiers, used by Alembic.
revision: str = "d05e4b7c3a92"
down_revision: str | Sequence[str] | None = ("9e6b3f15c40d", "62a8d9f07e1b")
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    pass


def downgrade() -> None:
    """Downgrade schema."""
    pass
