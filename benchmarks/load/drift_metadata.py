"""The models the load test's targets are compared with for drift (``DASHBOARD_DRIFT_METADATA``).

The load test's SQLite targets hold only their ``alembic_version`` table (the
pages read the cached status, not the tables), so they are compared with an
empty ``MetaData``: no drift, except the one hand-made table that
``seed.py`` adds to the development target (a small, realistic drift).
"""

from __future__ import annotations

from sqlalchemy import MetaData

metadata = MetaData()
