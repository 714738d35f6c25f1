"""Status reads are queued at most once per environment (issue 11, item 20), and an
environment never read reads itself (issue 12, item 8; the browser journey with a
real worker is tests/browser/test_environments_first_read_journey.py).

Real Celery calls on Redis: the task functions run here, the messages they
send land on a queue of this test's own and are counted there.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from dashboard.environments import tasks
from dashboard.environments.dispatch import environment_refresh_enqueue
from dashboard.environments.models import Environment
from tests.dashboard.environments_helpers import make_environment, migrate_target
from tests.dashboard.refresh_support import environments_queue, queued_reads

pytestmark = pytest.mark.django_db
REDIS = os.environ["TEST_REDIS_URL"]


@pytest.fixture
def queue() -> Iterator[str]:
    name = f"test-reads-{uuid.uuid4().hex[:8]}"
    with environments_queue(REDIS, name):
        yield name


@pytest.fixture
def three(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[Environment]:
    """Three environments never read; ``one`` has a real SQLite target at heads."""
    url = f"sqlite:///{tmp_path / 'one.sqlite3'}"
    migrate_target(url, "heads")
    return [
        make_environment(monkeypatch, "one", url, position=1),
        make_environment(monkeypatch, "two", f"sqlite:///{tmp_path / 'missing.sqlite3'}"),
        make_environment(monkeypatch, "three", f"sqlite:///{tmp_path / 'missing.sqlite3'}"),
    ]


def _queued_at(environment: Environment) -> Any:
    return Environment.objects.get(pk=environment.pk).status_refresh_queued_at


# --- beat's fan-out -------------------------------------------------------------


def test_it_queues_one_read_per_environment_and_none_while_one_is_queued(
    three: list[Environment], queue: str
) -> None:
    assert tasks.environments_refresh_all() == 3
    assert sorted(queued_reads(REDIS, queue)) == sorted(env.pk for env in three)
    assert all(_queued_at(env) is not None for env in three)

    # A minute later nothing was consumed yet (a backlog): nothing more is queued.
    assert tasks.environments_refresh_all() == 0
    assert len(queued_reads(REDIS, queue)) == 3


def test_a_finished_read_clears_the_mark_so_the_next_minute_queues_it_again(
    three: list[Environment], queue: str
) -> None:
    one = three[0]
    tasks.environments_refresh_all()
    tasks.environment_refresh(one.pk)  # what the worker runs for the first message

    one.refresh_from_db()
    assert one.status_state == "up_to_date" and one.status_refresh_queued_at is None
    assert tasks.environments_refresh_all() == 1
    assert queued_reads(REDIS, queue)[-1] == one.pk


def test_a_failed_read_clears_the_mark_too(
    three: list[Environment], queue: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(**_: Any) -> None:
        raise RuntimeError("the dashboard database went away mid-read")

    tasks.environments_refresh_all()
    monkeypatch.setattr(tasks, "environment_status_refresh", broken)
    with pytest.raises(RuntimeError):
        tasks.environment_refresh(three[1].pk)
    assert _queued_at(three[1]) is None
    assert _queued_at(three[2]) is not None


def test_a_lost_message_holds_an_environment_for_minutes_not_forever(
    three: list[Environment], queue: str
) -> None:
    tasks.environments_refresh_all()
    Environment.objects.filter(pk=three[0].pk).update(
        status_refresh_queued_at=timezone.now() - timedelta(minutes=6)
    )
    Environment.objects.filter(pk=three[1].pk).update(
        status_refresh_queued_at=timezone.now() - timedelta(minutes=2)
    )
    assert tasks.environments_refresh_all() == 1
    assert queued_reads(REDIS, queue)[-1] == three[0].pk


def test_a_broker_that_does_not_answer_leaves_no_mark_behind(
    three: list[Environment], settings: Any
) -> None:
    from dashboard.celery import app

    before = app.conf.broker_url
    app.conf.broker_url = "redis://127.0.0.1:9/0"  # discard port: nothing listens
    app._pool = None
    try:
        started = time.monotonic()
        assert environment_refresh_enqueue(environment_id=three[0].pk) is False
        assert time.monotonic() - started < 30
    finally:
        app.conf.broker_url = before
        app._pool = None
    assert _queued_at(three[0]) is None


# --- a never-read environment reads itself ----------------------------------------


def _htmx(user: Any) -> Client:
    client = Client(headers={"HX-Request": "true"})
    client.force_login(user)
    return client


def test_opening_a_never_read_environment_asks_for_its_first_read_but_a_get_writes_nothing(
    three: list[Environment], developer: Any, queue: str
) -> None:
    client = Client()
    client.force_login(developer)
    html = client.get("/environments/one/").content.decode()
    assert 'hx-post="/environments/one/first-read" hx-trigger="load"' in html
    assert _queued_at(three[0]) is None and queued_reads(REDIS, queue) == []


def test_the_first_read_is_queued_once_by_anyone_who_may_view_it(
    three: list[Environment], auditor: Any, developer: Any, outsider: Any, queue: str
) -> None:
    response = _htmx(auditor).post("/environments/one/first-read")
    html = response.content.decode()
    assert response.status_code == 200 and html.lstrip().startswith('<section id="status"')
    assert 'hx-get="/environments/one/status" hx-trigger="every 1s"' in html
    assert "Reading the database for the first time" in html
    assert queued_reads(REDIS, queue) == [three[0].pk]

    assert _htmx(developer).post("/environments/one/first-read").status_code == 200
    assert queued_reads(REDIS, queue) == [three[0].pk]  # deduplicated on the row
    assert _htmx(outsider).post("/environments/one/first-read").status_code == 403
    anonymous = Client().post("/environments/one/first-read")
    assert anonymous.status_code == 302 and "/admin/login/" in anonymous["Location"]


def test_an_environment_already_read_is_not_read_again_by_a_first_read(
    three: list[Environment], developer: Any, queue: str
) -> None:
    tasks.environment_refresh(three[0].pk)
    response = _htmx(developer).post("/environments/one/first-read")
    assert response.status_code == 200 and "hx-trigger" not in response.content.decode()
    assert queued_reads(REDIS, queue) == []


def test_the_status_fragment_polls_until_the_read_arrives_then_stops(
    three: list[Environment], developer: Any, queue: str
) -> None:
    client = _htmx(developer)
    client.post("/environments/one/first-read")
    polled = client.get("/environments/one/status")
    assert polled.status_code == 200 and 'hx-trigger="every 1s"' in polled.content.decode()

    tasks.environment_refresh(three[0].pk)  # the worker's part

    arrived = client.get("/environments/one/status")
    html = arrived.content.decode()
    assert arrived.status_code == 286  # htmx stops polling
    assert arrived["HX-Trigger"] == '{"environment-read": {}}'  # the plan reloads itself
    assert "Up to date" in html and "hx-trigger" not in html.split('id="drift"')[0]
    assert Client().get("/environments/one/status").status_code == 302


def test_a_first_read_that_could_not_be_queued_stops_polling_and_says_so(
    three: list[Environment], developer: Any
) -> None:
    response = _htmx(developer).get("/environments/two/status")
    assert response.status_code == 286
    assert "No read could be queued" in response.content.decode()


def test_load_environments_queues_the_first_read_of_what_it_creates(
    tmp_path: Path, queue: str, django_capture_on_commit_callbacks: Any
) -> None:
    from dashboard.environments.config_file import environments_load

    path = tmp_path / "environments.toml"
    path.write_text(
        '[environments.dev]\nname = "Dev"\nurl_env = "X_DEV"\n'
        '[environments.qa]\nname = "QA"\nurl_env = "X_QA"\nrun_timeout = "30m"\n'
        'idle_in_transaction_timeout = "1m"\n'
    )
    with django_capture_on_commit_callbacks(execute=True):
        environments_load(path=path)
    created = dict(Environment.objects.values_list("slug", "pk"))
    assert sorted(queued_reads(REDIS, queue)) == sorted(created.values())
    qa = Environment.objects.get(slug="qa")
    assert qa.run_timeout == timedelta(minutes=30)
    assert qa.idle_in_transaction_timeout == timedelta(minutes=1)

    with django_capture_on_commit_callbacks(execute=True):
        environments_load(path=path)  # unchanged: nothing created, nothing queued
    assert len(queued_reads(REDIS, queue)) == 2
