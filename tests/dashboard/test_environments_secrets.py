"""A canary password in every environment's URL never leaks.

Not in any page or htmx fragment, not in the dashboard database, not in log
output, not in a Celery message (read raw from Redis) and not in a real
worker's log.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import pytest
import redis
from django.conf import settings
from django.db import connection
from django.test import Client

from dashboard.environments.models import Environment
from dashboard.environments.tasks import environments_refresh_all
from tests.dashboard.approvals_support import Worker, broker, drop_queue_keys, wait_for
from tests.dashboard.environments_helpers import (
    CANARY,
    make_environment,
    migrate_target,
    with_password,
)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def canary_environments(
    monkeypatch: pytest.MonkeyPatch, postgres_url: str, tmp_path: Path
) -> list[Environment]:
    migrate_target(postgres_url, "heads")
    secret_file = tmp_path / "staging_url"
    secret_file.write_text(f"postgresql+psycopg://magnetiq:{CANARY}@127.0.0.1:1/magnetiq\n")
    staging = Environment.objects.create(
        slug="staging", name="Staging", position=2, url_file=str(secret_file)
    )
    production = make_environment(
        monkeypatch, "production", with_password(postgres_url), position=3
    )
    return [staging, production]


def _database_dump() -> str:
    """``pg_dump`` of the dashboard's whole (test) database, every table and row."""
    db = connection.settings_dict
    done = subprocess.run(
        [
            "pg_dump",
            "--host",
            db["HOST"] or "127.0.0.1",
            "--port",
            str(db["PORT"] or 5432),
            "--username",
            db["USER"] or "postgres",
            db["NAME"],
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "environments_environment" in done.stdout
    return done.stdout


def _pages(client: Client, environments: list[Environment]) -> list[str]:
    bodies = [client.get("/").content.decode()]
    for env in environments:
        base = f"/environments/{env.slug}/"
        htmx = {"HX-Request": "true"}
        bodies += [
            client.get(base).content.decode(),
            client.get(
                base,
                {"target": "base", "direction": "downgrade"},
                headers={**htmx, "HX-Target": "plan"},
            ).content.decode(),
            client.post(f"{base}refresh", headers=htmx).content.decode(),
            client.get(f"{base}plan.sql").content.decode(),
            client.get(f"/admin/environments/environment/{env.pk}/change/").content.decode(),
        ]
    bodies.append(client.get("/admin/environments/environment/").content.decode())
    return bodies


def test_the_canary_password_never_leaks(
    canary_environments: list[Environment],
    make_user: object,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    caplog.set_level("DEBUG")
    redis_url = os.environ["TEST_REDIS_URL"]
    queue = f"h3-env-{uuid.uuid4().hex[:8]}"
    admin = make_user("root", superuser=True)  # type: ignore[operator]
    client = Client()
    client.force_login(admin)
    try:
        with broker(redis_url, queue):  # every queue routed to this test's own
            environments_refresh_all()  # fans out one message per environment
            raw = redis.Redis.from_url(redis_url).lrange(queue, 0, -1)
            assert len(raw) == 2
            for message in raw:
                assert CANARY.encode() not in message and b"postgresql" not in message
            worker = Worker(
                broker_url=redis_url,
                queue=queue,
                ini=Path(settings.ALEMBIC_CONFIG),
                log=tmp_path / "worker.log",
            )
            try:
                wait_for(
                    lambda: (
                        Environment.objects.filter(status_refreshed_at__isnull=False).count() == 2
                    ),
                    timeout=30,
                )
            finally:
                worker.stop()
        assert CANARY not in (tmp_path / "worker.log").read_text()
    finally:
        drop_queue_keys(redis_url, queue)

    states = dict(Environment.objects.values_list("slug", "status_state"))
    assert states == {"staging": "unreachable", "production": "up_to_date"}

    for body in _pages(client, canary_environments):
        assert CANARY not in body
    assert "magnetiq@127.0.0.1:1/magnetiq" in client.get("/environments/staging/").content.decode()

    assert CANARY not in _database_dump()
    assert CANARY not in caplog.text
    captured = capfd.readouterr()
    assert CANARY not in captured.out + captured.err
