"""A small generated Alembic history for the environments tests (issue 4).

Graph (``x`` depends on ``b`` and lives on its own branch ``audit``)::

    a -- b -- c1 -- c2 --+-- m -- e          (c1 carries branch label "feature")
          \\-- d --------/
    x  (base of branch "audit", depends_on b)

``b`` adds a NOT NULL column without default (on PostgreSQL), ``e`` drops a
column, ``m`` is a merge, ``d`` backfills data. The project's env.py records
every applied step in ``config.attributes["applied"]``.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

from alembic.config import Config
from alembic.script import ScriptDirectory

ENV_PY = """
from alembic import context
from sqlalchemy import create_engine

config = context.config


def record(ctx, step, heads, run_args):
    config.attributes.setdefault("applied", []).append(step.up_revision_id)


if context.is_offline_mode():
    context.configure(url=config.get_main_option("sqlalchemy.url"))
    with context.begin_transaction():
        context.run_migrations()
else:
    engine = create_engine(config.get_main_option("sqlalchemy.url"))
    with engine.connect() as connection:
        context.configure(connection=connection, on_version_apply=record)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()
"""

REVISIONS: dict[str, tuple[object, object, object, object, str, str]] = {
    # rev: (down_revision, branch_labels, depends_on, message, upgrade body, downgrade body)
    "a": (
        None,
        None,
        None,
        "create users",
        'op.create_table("users", sa.Column("id", sa.Integer, primary_key=True),'
        ' sa.Column("first", sa.String(50)), sa.Column("last", sa.String(50)))',
        'op.drop_table("users")',
    ),
    "b": (
        "a",
        None,
        None,
        "add users email",
        'if op.get_context().dialect.name == "sqlite":\n'
        '        op.add_column("users", sa.Column("email", sa.String(200), nullable=False,'
        ' server_default=""))\n'
        "    else:\n"
        '        op.add_column("users", sa.Column("email", sa.String(200), nullable=False))',
        'op.drop_column("users", "email")',
    ),
    "c1": (
        "b",
        ("feature",),
        None,
        "create pages",
        'op.create_table("pages", sa.Column("id", sa.Integer, primary_key=True),'
        ' sa.Column("slug", sa.String(80)))',
        'op.drop_table("pages")',
    ),
    "c2": (
        "c1",
        None,
        None,
        "index pages slug",
        'op.create_index("ix_pages_slug", "pages", ["slug"])',
        'op.drop_index("ix_pages_slug", table_name="pages")',
    ),
    "d": (
        "b",
        None,
        None,
        "add users full name",
        'op.add_column("users", sa.Column("full_name", sa.String(120)))\n'
        "    op.execute(\"UPDATE users SET full_name = first || ' ' || last\")",
        'op.drop_column("users", "full_name")',
    ),
    "m": (("c2", "d"), None, None, "merge feature", "pass", "pass"),
    "e": (
        "m",
        None,
        None,
        "drop users last",
        'op.drop_column("users", "last")',
        'op.add_column("users", sa.Column("last", sa.String(50)))',
    ),
    "x": (
        None,
        ("audit",),
        ("b",),
        "create audit log",
        'op.create_table("audit_log", sa.Column("id", sa.Integer, primary_key=True),'
        ' sa.Column("what", sa.Text))',
        'op.drop_table("audit_log")',
    ),
}


def write_history(root: Path) -> Path:
    """Write the Alembic project under ``root`` and return the script directory path."""
    versions = root / "versions"
    versions.mkdir(parents=True, exist_ok=True)
    (root / "env.py").write_text(ENV_PY)
    (root / "script.py.mako").write_text("# unused\n")
    for rev, (down, labels, depends, message, up, down_body) in REVISIONS.items():
        body = f'''
            """{message}"""
            import sqlalchemy as sa
            from alembic import op

            revision = {rev!r}
            down_revision = {down!r}
            branch_labels = {labels!r}
            depends_on = {depends!r}


            def upgrade():
                {{UP}}


            def downgrade():
                {{DOWN}}
            '''
        source = textwrap.dedent(body).replace("{UP}", up).replace("{DOWN}", down_body)
        (versions / f"{rev}_{message.replace(' ', '_')}.py").write_text(source)
    return root


def alembic_config(script_location: Path, url: str) -> Config:
    """An Alembic ``Config`` for the generated project pointing at ``url``."""
    config = Config()
    config.set_main_option("script_location", str(script_location))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def script_directory(script_location: Path) -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config(script_location, "sqlite://"))
