"""The broker goes away while a tech lead approves: nothing is lost, the run starts once it is back.

Uses a private ``redis-server`` on a free loopback port (stopping the shared
Redis would disturb everyone else), with a real worker attached to it.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from django.test import Client
from django.urls import reverse

from dashboard.approvals.models import MigrationRequest
from dashboard.approvals.services.dispatch import approved_requests_redispatch
from dashboard.approvals.services.requests import migration_request_create
from tests.dashboard.approvals_support import (
    HEARTBEAT_SECONDS,
    Worker,
    broker,
    make_environment,
    target_heads,
    wait_for,
)
from tests.migrator.execution_project import throwaway_postgres, write_project

pytestmark = pytest.mark.django_db(transaction=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PrivateRedis:
    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
        )
        wait_for(self._answers, timeout=10)

    def _answers(self) -> bool:
        with contextlib.suppress(redis.RedisError):
            return bool(redis.Redis.from_url(self.url, socket_timeout=0.5).ping())
        return False

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    server = PrivateRedis(_free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture
def project_ini(tmp_path: Path, settings: Any) -> Path:
    ini = write_project(tmp_path / "project")
    settings.ALEMBIC_CONFIG = str(ini)
    settings.DASHBOARD_RUN_HEARTBEAT = timedelta(seconds=HEARTBEAT_SECONDS)
    return ini


def test_redis_stopped_while_approving_then_back(
    private_redis: PrivateRedis,
    project_ini: Path,
    tmp_path: Path,
    developer: Any,
    lead: Any,
    lead2: Any,
) -> None:
    queue = f"test-broker-{uuid.uuid4().hex[:8]}"
    worker = Worker(
        broker_url=private_redis.url, queue=queue, ini=project_ini, log=tmp_path / "w.log"
    )
    try:
        with throwaway_postgres("broker") as url, broker(private_redis.url, queue):
            env = make_environment(slug="production", url=url, directory=tmp_path)
            request = migration_request_create(
                environment=env, actor=developer, direction="upgrade", target="c", reason="r"
            )
            private_redis.stop()
            answered_in = []
            for user in (lead, lead2):
                client = Client()
                client.force_login(user)
                started = time.monotonic()
                client.post(reverse("approvals:approve", args=[request.pk]))
                answered_in.append(time.monotonic() - started)
            assert max(answered_in) < 2.0, answered_in  # the page answers, the approval is kept

            request.refresh_from_db()
            assert request.status == "approved" and request.approvals.count() == 2
            page = client.get(reverse("approvals:detail", args=[request.pk]))
            assert b"worker queue is unavailable" in page.content

            private_redis.start()
            assert approved_requests_redispatch() == 1  # what the beat task does

            def ended() -> bool:
                request.refresh_from_db()
                return request.status in MigrationRequest.ENDED_STATUSES

            wait_for(ended, timeout=90, interval=0.3)
            assert request.status == "succeeded"
            assert target_heads(url) == ("c",)
    finally:
        worker.stop()
