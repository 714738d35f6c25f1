"""Fixtures of the API tests: a small Alembic project, environments on it, tokens.

Import the fixtures you use into the test module (they are not in conftest
because they belong to the API tests only). History of the project::

    a (create widgets) -- b (add widgets.colour) -- c (create gadgets)

Environment ``dev`` is a SQLite file at ``a``; ``prod`` points at a closed
loopback port (unreachable).
"""

from __future__ import annotations

import shutil
import textwrap
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.config import Config

ENV_PY = """
from alembic import context
from sqlalchemy import create_engine

config = context.config
if context.is_offline_mode():
    context.configure(url=config.get_main_option("sqlalchemy.url"))
    with context.begin_transaction():
        context.run_migrations()
else:
    engine = create_engine(config.get_main_option("sqlalchemy.url"))
    with engine.connect() as connection:
        context.configure(connection=connection)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()
"""

REVISIONS = {
    "a": (None, "create widgets", 'op.create_table("widgets", sa.Column("id", sa.Integer, primary_key=True))', 'op.drop_table("widgets")'),
    "b": ("a", "add widgets colour", 'op.add_column("widgets", sa.Column("colour", sa.String(20)))', 'op.drop_column("widgets", "colour")'),
    "c": ("b", "create gadgets", 'op.create_table("gadgets", sa.Column("id", sa.Integer, primary_key=True))', 'op.drop_table("gadgets")'),
}  # fmt: skip

UNREACHABLE_URL = "postgresql+psycopg://postgres@127.0.0.1:1/nothing"


def write_project(root: Path) -> Path:
    """Write the Alembic project under ``root``; return its alembic.ini."""
    versions = root / "versions"
    versions.mkdir(parents=True)
    (root / "env.py").write_text(ENV_PY)
    for rev, (down, message, up, down_body) in REVISIONS.items():
        source = textwrap.dedent(
            f'''
            """{message}"""
            import sqlalchemy as sa
            from alembic import op

            revision = {rev!r}
            down_revision = {down!r}
            branch_labels = None
            depends_on = None


            def upgrade():
                {up}


            def downgrade():
                {down_body}
            '''
        )
        (versions / f"{rev}_{message.replace(' ', '_')}.py").write_text(source)
    ini = root / "alembic.ini"
    ini.write_text(f"[alembic]\nscript_location = {root}\npath_separator = os\n")
    return ini


def upgrade(ini: Path, url: str, revision: str) -> None:
    config = Config(str(ini))
    config.set_main_option("sqlalchemy.url", url)
    command.upgrade(config, revision)


@pytest.fixture(scope="module")
def api_project(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(alembic.ini, a SQLite file at revision ``a`` to copy), made once per module."""
    root = tmp_path_factory.mktemp("api_project")
    ini = write_project(root / "project")
    template = root / "at_a.sqlite3"
    upgrade(ini, f"sqlite:///{template}", "a")
    return ini, template


@pytest.fixture
def api_envs(
    api_project: tuple[Path, Path],
    settings: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    db: None,
) -> Iterator[dict[str, Any]]:
    """Environments ``dev`` (SQLite at ``a``, status read) and ``prod`` (unreachable)."""
    from dashboard.environments.models import Environment
    from dashboard.environments.services import environment_status_refresh

    ini, template = api_project
    settings.ALEMBIC_CONFIG = str(ini)
    target = tmp_path / "dev.sqlite3"
    shutil.copy(template, target)
    suffix = uuid.uuid4().hex[:8].upper()
    monkeypatch.setenv(f"API_TEST_DEV_{suffix}", f"sqlite:///{target}")
    monkeypatch.setenv(f"API_TEST_PROD_{suffix}", UNREACHABLE_URL)
    dev = Environment.objects.create(
        slug="dev", name="Development", position=1, url_env=f"API_TEST_DEV_{suffix}"
    )
    prod = Environment.objects.create(
        slug="prod", name="Production", position=3, url_env=f"API_TEST_PROD_{suffix}"
    )
    environment_status_refresh(environment=dev, check_drift=False)
    yield {"dev": dev, "prod": prod, "dev_url": f"sqlite:///{target}", "ini": ini}


@pytest.fixture
def make_token() -> Callable[[Any], str]:
    """``make_token(user)``: a fresh API token's plaintext for ``user``."""
    from dashboard.api.services import api_token_create

    def make(user: Any, name: str = "CI") -> str:
        return api_token_create(owner=user, name=name, actor=user)[1]

    return make


def bearer(token: str) -> dict[str, str]:
    """Django test client kwargs for ``Authorization: Bearer <token>``."""
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}
