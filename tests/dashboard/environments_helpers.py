"""Helpers of the environments tests (issue 4): real Magnetiq2 targets and environments."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from alembic import command
from alembic.config import Config
from django.conf import settings
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url

CANARY = "Canary-Pw-51e9c0"


def migrate_target(url: str, target: str) -> None:
    """Run the real Magnetiq2 ``alembic upgrade <target>`` on ``url`` (env.py with a connection)."""
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            config = Config(settings.ALEMBIC_CONFIG)
            config.attributes["connection"] = connection
            command.upgrade(config, target)
    finally:
        engine.dispose()


def with_password(url: str, password: str = CANARY) -> str:
    """``url`` with a password (PostgreSQL here trusts loopback, so it still connects)."""
    return make_url(url).set(password=password).render_as_string(hide_password=False)


def make_environment(monkeypatch: pytest.MonkeyPatch, slug: str, url: str, **fields: Any) -> Any:
    """An Environment whose URL sits in a uniquely named process environment variable."""
    from dashboard.environments.models import Environment

    variable = f"H3_TEST_URL_{slug.upper()}_{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv(variable, url)
    fields.setdefault("name", slug.capitalize())
    return Environment.objects.create(slug=slug, url_env=variable, **fields)
