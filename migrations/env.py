"""Alembic environment of the Magnetiq2 schema (async style, also usable with a passed connection).

How a database is chosen, in order:

1. ``config.attributes["connection"]`` — the caller hands over a live SQLAlchemy
   ``Connection`` (the dashboard's worker does this; pytest-alembic hands over an
   ``Engine``, which is accepted too). Logging is left alone in this case.
2. Otherwise the URL comes from the environment variable ``MAGNETIQ_DATABASE_URL``
   (offline ``--sql`` mode too). Async URLs (``postgresql+psycopg://``,
   ``sqlite+aiosqlite://``) run on an async engine; the bare ``postgresql://`` and
   ``sqlite://`` URLs are mapped to those async drivers; any other sync-only
   driver runs on a plain sync engine. An unset variable is a one-line
   ``CommandError`` naming it. The URL is never printed (it may hold a password).

CONTRACT with callers that pass a connection (the dashboard relies on it): env.py
calls exactly::

    context.configure(
        connection=connection,
        target_metadata=magnetiq_schema.metadata,
        render_as_batch=<dialect is sqlite>,
        compare_type=True,
        compare_server_default=True,
        **config.attributes.get("context_options", {}),
    )
    with context.begin_transaction():
        context.run_migrations()

``context_options`` may carry any ``EnvironmentContext.configure`` keyword, e.g.
``on_version_apply``, ``transaction_per_migration``, ``version_table``,
``version_table_schema``; they override the defaults above. If the passed connection
is already inside a transaction, the migrations join it and the caller commits;
otherwise Alembic begins and commits its own. The same options are
merged in the offline and the CLI online paths. ``fileConfig`` is only called when
running from the CLI (an ini file is loaded and no connection was passed).
"""

from __future__ import annotations

import asyncio
import os
from logging.config import fileConfig
from typing import Any

import sqlalchemy as sa
from alembic import context
from alembic.util import CommandError
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.exc import ArgumentError, InvalidRequestError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from magnetiq_schema import metadata

URL_ENV_VAR = "MAGNETIQ_DATABASE_URL"

# Bare dialect names whose default DBAPI is sync (or not installed here): run them
# on the async driver the project ships with.
_ASYNC_DRIVER_FOR: dict[str, str] = {
    "postgresql": "postgresql+psycopg",
    "sqlite": "sqlite+aiosqlite",
}

config = context.config


def _context_options() -> dict[str, Any]:
    """Extra ``context.configure`` keywords passed by the caller (may be empty)."""
    return dict(config.attributes.get("context_options", {}))


def _configure_kwargs(dialect_name: str) -> dict[str, Any]:
    """The defaults every path uses, overridden by the caller's ``context_options``."""
    return {
        "target_metadata": metadata,
        "render_as_batch": dialect_name == "sqlite",
        "compare_type": True,
        "compare_server_default": True,
        **_context_options(),
    }


def database_url() -> URL:
    """Read ``MAGNETIQ_DATABASE_URL``; raise a one-line ``CommandError`` if unset or invalid."""
    raw = os.environ.get(URL_ENV_VAR, "").strip()
    if not raw:
        raise CommandError(f"{URL_ENV_VAR} is not set: the URL of the database to migrate")
    try:
        url = sa.make_url(raw)
    except ArgumentError:
        raise CommandError(f"{URL_ENV_VAR} is not a valid SQLAlchemy database URL") from None
    return url.set(drivername=_ASYNC_DRIVER_FOR.get(url.drivername, url.drivername))


def do_run_migrations(connection: Connection) -> None:
    """Configure the context on ``connection`` and run the migrations (the contract above)."""
    context.configure(connection=connection, **_configure_kwargs(connection.dialect.name))
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline() -> None:
    """Emit the SQL to stdout (``--sql``) for the dialect of ``MAGNETIQ_DATABASE_URL``."""
    url = database_url()
    context.configure(
        url=url,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        **_configure_kwargs(url.get_backend_name()),
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_on_async_engine(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        await connection.run_sync(do_run_migrations)
        await connection.commit()


async def _run_on_async_connection(connection: AsyncConnection) -> None:
    await connection.run_sync(do_run_migrations)


def _run_on_sync_engine(engine: Engine) -> None:
    with engine.connect() as connection:
        do_run_migrations(connection)
        connection.commit()


def run_migrations_with(connectable: Any) -> None:
    """Run on what the caller passed in ``config.attributes["connection"]``."""
    if isinstance(connectable, Connection):
        do_run_migrations(connectable)
    elif isinstance(connectable, Engine):
        _run_on_sync_engine(connectable)
    elif isinstance(connectable, AsyncEngine):
        asyncio.run(_run_on_async_engine(connectable))
    elif isinstance(connectable, AsyncConnection):
        asyncio.run(_run_on_async_connection(connectable))
    else:
        raise CommandError(
            'config.attributes["connection"] must be a SQLAlchemy Connection or Engine, '
            f"not {type(connectable).__name__}"
        )


def run_migrations_online() -> None:
    """Build an engine from ``MAGNETIQ_DATABASE_URL`` (async when the driver is) and migrate."""
    url = database_url()
    try:
        async_engine = create_async_engine(url, poolclass=sa.pool.NullPool)
    except InvalidRequestError:
        # A sync-only driver (e.g. postgresql+psycopg2): a plain engine does the job.
        engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
        try:
            _run_on_sync_engine(engine)
        finally:
            engine.dispose()
        return

    async def run() -> None:
        try:
            await _run_on_async_engine(async_engine)
        finally:
            await async_engine.dispose()

    asyncio.run(run())


def main() -> None:
    """Entry point: pick the passed connection, offline mode, or the CLI online mode."""
    connectable = config.attributes.get("connection")
    if connectable is not None:
        run_migrations_with(connectable)
        return
    if config.config_file_name is not None:
        fileConfig(config.config_file_name, disable_existing_loggers=False)
    if context.is_offline_mode():
        run_migrations_offline()
    else:
        run_migrations_online()


main()
