"""Fixtures for the tests of the Magnetiq2 Alembic project (``alembic.ini`` + ``migrations/``).

``alembic_config`` and ``alembic_engine`` configure pytest-alembic; the engine is
parametrized over a fresh PostgreSQL database (created with a unique name, dropped
afterwards) and a fresh SQLite file. No Django database is involved.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import alembic.config
import pytest
import sqlalchemy as sa
from alembic.script import Script, ScriptDirectory

os.environ.setdefault("TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")

from tests.conftest import create_postgres_database, drop_postgres_database  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[2]
ALEMBIC_INI = REPO_ROOT / "alembic.ini"

DIALECTS = [
    pytest.param("postgresql", marks=pytest.mark.postgres, id="postgresql"),
    pytest.param("sqlite", id="sqlite"),
]


def make_alembic_config(
    connectable: sa.Engine | sa.Connection | None = None,
) -> alembic.config.Config:
    """The project's own ``alembic.ini``, optionally bound to ``connectable`` like the worker does."""
    config = alembic.config.Config(str(ALEMBIC_INI))
    if connectable is not None:
        config.attributes["connection"] = connectable
    return config


def revisions_in_order() -> list[Script]:
    """Every revision of the history, parents before children (base first)."""
    script = ScriptDirectory.from_config(make_alembic_config())
    return list(reversed(list(script.walk_revisions("base", "heads"))))


@pytest.fixture
def alembic_config() -> alembic.config.Config:
    return make_alembic_config()


@pytest.fixture(params=DIALECTS)
def alembic_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sa.Engine]:
    """A sync engine on an empty target database, once per dialect."""
    if request.param == "sqlite":
        engine = sa.create_engine(f"sqlite:///{tmp_path / 'magnetiq.sqlite3'}")
        yield engine
        engine.dispose()
        return
    url = create_postgres_database("magnetiq_alembic")
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        yield engine
    finally:
        engine.dispose()
        drop_postgres_database(url)
