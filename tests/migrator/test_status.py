"""Every state of an environment, read without env.py, on real targets; dead targets time out."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import create_engine, inspect, text

from dashboard.migrator.status import (
    EnvironmentState,
    NoVersionTable,
    TargetUnreachable,
    read_current_heads,
    status_read,
)
from tests.migrator.environments_support import alembic_config, script_directory, write_history

CANARY = "Canary-Pw-7f3a91"


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_history(tmp_path_factory.mktemp("history"))


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A loopback socket that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    yield server.getsockname()[1]
    server.close()


@pytest.fixture
def closed_port() -> int:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens there any more
    return port


def _create_empty(url: str) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE unrelated (id INTEGER PRIMARY KEY)"))
    engine.dispose()


def test_it_reports_up_to_date_and_pending(history: Path, target_url: str) -> None:
    script = script_directory(history)
    command.upgrade(alembic_config(history, target_url), "m")
    status = status_read(script, url=target_url)
    assert status.state == EnvironmentState.PENDING
    assert status.current_heads == ("m",)
    assert status.pending == ("x", "e")
    assert {"a", "b", "c1", "c2", "d", "m"} == status.applied

    command.upgrade(alembic_config(history, target_url), "heads")
    status = status_read(script, url=target_url)
    assert status.state == EnvironmentState.UP_TO_DATE and status.pending == ()


def test_it_reports_several_heads(history: Path, target_url: str) -> None:
    config = alembic_config(history, target_url)
    command.upgrade(config, "c2")
    command.upgrade(config, "d")
    status = status_read(script_directory(history), url=target_url)
    assert status.multiple_heads and sorted(status.current_heads) == ["c2", "d"]
    assert status.pending == ("x", "m", "e")


def test_no_version_table_is_a_state_and_nothing_is_created(history: Path, target_url: str) -> None:
    _create_empty(target_url)
    status = status_read(script_directory(history), url=target_url)
    assert status.state == EnvironmentState.NO_VERSION_TABLE
    assert status.pending[0] == "a" and len(status.pending) == 8
    engine = create_engine(target_url)
    with engine.connect() as conn:
        assert not inspect(conn).has_table("alembic_version")
    engine.dispose()
    with pytest.raises(NoVersionTable):
        read_current_heads(target_url)


def test_a_missing_sqlite_file_is_unreachable_and_not_created(
    history: Path, tmp_path: Path
) -> None:
    path = tmp_path / "never.sqlite3"
    status = status_read(script_directory(history), url=f"sqlite:///{path}")
    assert status.state == EnvironmentState.UNREACHABLE
    assert "does not exist" in (status.error or "")
    assert not path.exists()


def test_an_unknown_revision_in_the_database_is_a_state(history: Path, target_url: str) -> None:
    command.upgrade(alembic_config(history, target_url), "b")
    engine = create_engine(target_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'feedbeef0001'"))
    engine.dispose()
    status = status_read(script_directory(history), url=target_url)
    assert status.state == EnvironmentState.UNKNOWN_REVISION
    assert status.unknown_revisions == ("feedbeef0001",)
    assert "ahead of this code" in (status.error or "")


def test_a_custom_version_table_and_schema(history: Path, postgres_url: str) -> None:
    engine = create_engine(postgres_url)
    with engine.begin() as conn:
        conn.execute(text("CREATE SCHEMA ops"))
        conn.execute(text("CREATE TABLE ops.history (version_num varchar(32) PRIMARY KEY)"))
        conn.execute(text("INSERT INTO ops.history VALUES ('c1')"))
    engine.dispose()
    heads = read_current_heads(postgres_url, version_table="history", version_table_schema="ops")
    assert heads == ("c1",)


def test_a_closed_port_is_unreachable_with_the_driver_reason_and_no_password(
    history: Path, closed_port: int
) -> None:
    url = f"postgresql+psycopg://magnetiq:{CANARY}@127.0.0.1:{closed_port}/magnetiq"
    status = status_read(script_directory(history), url=url, connect_timeout=2)
    assert status.state == EnvironmentState.UNREACHABLE
    assert "refused" in (status.error or "").lower()
    assert CANARY not in (status.error or "")


def test_a_socket_that_never_answers_times_out(history: Path, silent_port: int) -> None:
    url = f"postgresql+psycopg://magnetiq:{CANARY}@127.0.0.1:{silent_port}/magnetiq"
    started = time.monotonic()
    status = status_read(script_directory(history), url=url, connect_timeout=2)
    elapsed = time.monotonic() - started
    assert status.state == EnvironmentState.UNREACHABLE
    assert elapsed < 6, f"status read took {elapsed:.1f}s"
    assert "timeout" in (status.error or "").lower()
    assert CANARY not in (status.error or "")
    with pytest.raises(TargetUnreachable):
        read_current_heads(url, connect_timeout=2)


def test_a_wrong_password_is_reported_without_it(postgres_url: str) -> None:
    from sqlalchemy.engine import make_url

    url = make_url(postgres_url).set(username="nobody_here", password=CANARY)
    with pytest.raises(TargetUnreachable) as caught:
        read_current_heads(url.render_as_string(hide_password=False), connect_timeout=2)
    assert CANARY not in str(caught.value)
    assert "nobody_here" in str(caught.value)


def test_masking_drops_the_password_entirely() -> None:
    from dashboard.migrator.secrets import mask_url, scrub_secret

    url = f"postgresql+psycopg://magnetiq:{CANARY}@db-prod:5432/magnetiq?password=x&sslmode=require"
    assert mask_url(url) == "postgresql+psycopg://magnetiq@db-prod:5432/magnetiq?sslmode=require"
    assert CANARY not in scrub_secret(f"failed for {url} ({CANARY})", url)
