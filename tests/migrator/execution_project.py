"""A tiny generated Alembic project and throw-away databases for execution tests.

History (linear trunk, two test-only branches off ``c``)::

    a -- b -- c -- boom        (boom creates a table, then raises when run online)
               \\-- slow       (slow sleeps SLOW_SECONDS on PostgreSQL)

``a`` creates ``items``, ``b`` adds ``items.note`` (so it needs a lock on
``items``), ``c`` creates ``tags``. The env.py follows the repository's
contract: it uses ``config.attributes["connection"]`` and passes
``config.attributes["context_options"]`` to ``context.configure``.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic.config import Config

from tests.conftest import create_postgres_database, drop_postgres_database

SLOW_SECONDS = 4

ENV_PY = """
from alembic import context
from sqlalchemy import create_engine, pool

config = context.config
connection = config.attributes.get("connection")
options = config.attributes.get("context_options", {})

if context.is_offline_mode():
    context.configure(url=config.get_main_option("sqlalchemy.url"), **options)
    with context.begin_transaction():
        context.run_migrations()
elif connection is not None:
    context.configure(
        connection=connection,
        render_as_batch=connection.dialect.name == "sqlite",
        **options,
    )
    with context.begin_transaction():
        context.run_migrations()
else:
    engine = create_engine(config.get_main_option("sqlalchemy.url"), poolclass=pool.NullPool)
    with engine.connect() as conn:
        context.configure(connection=conn, **options)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()
"""

SCRIPT_MAKO = '''"""${message}"""
revision = ${repr(up_revision)}
down_revision = ${repr(down_revision)}
branch_labels = ${repr(branch_labels)}
depends_on = ${repr(depends_on)}


def upgrade():
    ${upgrades if upgrades else "pass"}


def downgrade():
    ${downgrades if downgrades else "pass"}
'''

REVISIONS: dict[str, tuple[str | None, str, str]] = {
    "a": (
        None,
        'op.create_table("items", sa.Column("id", sa.Integer, primary_key=True),'
        ' sa.Column("name", sa.String(50)))',
        'op.drop_table("items")',
    ),
    "b": (
        "a",
        'op.add_column("items", sa.Column("note", sa.String(50)))',
        'with op.batch_alter_table("items") as batch:\n        batch.drop_column("note")',
    ),
    "c": (
        "b",
        'op.create_table("tags", sa.Column("id", sa.Integer, primary_key=True))',
        'op.drop_table("tags")',
    ),
    "boom": (
        "c",
        'op.create_table("half_done", sa.Column("id", sa.Integer, primary_key=True))\n'
        "    if not op.get_context().as_sql:\n"
        '        raise RuntimeError("boom: this revision always fails")',
        'op.drop_table("half_done")',
    ),
    "slow": (
        "c",
        "if op.get_context().dialect.name == 'postgresql':\n"
        f'        op.execute("SELECT pg_sleep({SLOW_SECONDS})")\n'
        '    op.create_table("slow_done", sa.Column("id", sa.Integer, primary_key=True))',
        'op.drop_table("slow_done")',
    ),
}
BRANCH_LABELS: dict[str, str] = {}

# A revision d on top of c that tests write into a project after a plan was checked.
LATE_REVISION = '''"""revision d, written after the plan was checked"""
import sqlalchemy as sa
from alembic import op

revision = "d"
down_revision = "c"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table("unreviewed", sa.Column("id", sa.Integer, primary_key=True))


def downgrade():
    op.drop_table("unreviewed")
'''


def write_project(root: Path, url: str = "sqlite://") -> Path:
    """Write the project under ``root``; return the path of its alembic.ini."""
    versions = root / "versions"
    versions.mkdir(parents=True, exist_ok=True)
    (root / "env.py").write_text(ENV_PY)
    (root / "script.py.mako").write_text(SCRIPT_MAKO)
    for rev, (down, up_body, down_body) in REVISIONS.items():
        labels = (BRANCH_LABELS[rev],) if rev in BRANCH_LABELS else None
        source = f'''
            """revision {rev}"""
            import sqlalchemy as sa
            from alembic import op

            revision = {rev!r}
            down_revision = {down!r}
            branch_labels = {labels!r}
            depends_on = None


            def upgrade():
                UPGRADE


            def downgrade():
                DOWNGRADE
        '''
        source = textwrap.dedent(source).replace("UPGRADE", up_body)
        source = source.replace("DOWNGRADE", down_body)
        (versions / f"{rev}_revision.py").write_text(source)
    ini = root / "alembic.ini"
    ini.write_text(
        f"[alembic]\nscript_location = {root}\nsqlalchemy.url = {url}\npath_separator = os\n"
    )
    return ini


def alembic_config(ini: Path) -> Config:
    return Config(str(ini))


@contextmanager
def throwaway_postgres(prefix: str = "exec") -> Iterator[str]:
    """A uniquely named PostgreSQL database on ``TEST_POSTGRES_URL``; dropped after."""
    url = create_postgres_database(prefix)
    try:
        yield url
    finally:
        drop_postgres_database(url)
