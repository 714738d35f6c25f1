"""audit_record: one event per call, right fields, same transaction, secrets masked."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.db import connection, transaction
from django.test import RequestFactory
from django.utils import timezone

from dashboard.audit.chain import GENESIS_HASH, event_hash
from dashboard.audit.masking import MASK
from dashboard.audit.models import AuditEvent
from dashboard.audit.services import audit_record

pytestmark = pytest.mark.django_db

SQL_HASH = "a" * 64
ACTIONS = [
    "dashboard.request.created",
    "dashboard.request.approved",
    "dashboard.request.rejected",
    "dashboard.request.cancelled",
    "dashboard.request.expired",
    "dashboard.run.started",
    "dashboard.run.succeeded",
    "dashboard.run.failed",
    "dashboard.run.interrupted",
    "dashboard.environment.changed",
    "dashboard.audit.exported",
]


def _http_request() -> object:
    return RequestFactory().post(
        "/requests/7/approve", REMOTE_ADDR="10.1.2.3", HTTP_USER_AGENT="Firefox/130"
    )


@pytest.mark.parametrize("action", ACTIONS)
def test_it_writes_exactly_one_event_with_every_field(action: str, lead: object) -> None:
    environment = SimpleNamespace(pk=3, slug="production")
    migration_request = SimpleNamespace(pk=7)

    with transaction.atomic():
        event = audit_record(
            action=action,
            actor=lead,
            environment=environment,
            request=migration_request,
            from_revisions=["a1b2"],
            to_revisions=["c3d4", "e5f6"],
            sql_sha256=SQL_HASH,
            http_request=_http_request(),
            payload={"note": "hello", "count": 2},
        )

    stored = AuditEvent.objects.get()
    assert stored.seq == event.seq == 1
    assert stored.action == action
    assert (stored.actor_type, stored.actor_id, stored.actor_username) == ("user", lead.pk, "lead")
    assert (stored.environment_id, stored.environment_slug) == (3, "production")
    assert stored.request_id == 7
    assert stored.from_revision_list == ["a1b2"]
    assert stored.to_revision_list == ["c3d4", "e5f6"]
    assert stored.sql_sha256 == SQL_HASH
    assert (stored.client_ip, stored.user_agent) == ("10.1.2.3", "Firefox/130")
    assert stored.payload == {"note": "hello", "count": 2}
    assert stored.created_at.utcoffset().total_seconds() == 0
    assert stored.prev_hash == GENESIS_HASH
    assert stored.hash == event_hash(stored.chain_fields())


def test_it_records_the_worker_host_and_pid_when_there_is_no_user() -> None:
    import os
    import socket

    with transaction.atomic():
        audit_record(action="dashboard.run.started", to_revisions=["head1"])

    event = AuditEvent.objects.get()
    assert event.actor_type == "system"
    assert event.actor_id is None
    assert (event.actor_host, event.actor_pid) == (socket.gethostname(), os.getpid())


def test_it_writes_nothing_when_the_change_rolls_back(lead: object) -> None:
    class ChangeFailed(Exception):
        pass

    with pytest.raises(ChangeFailed), transaction.atomic():
        audit_record(action="dashboard.request.approved", actor=lead, request=SimpleNamespace(pk=1))
        raise ChangeFailed

    assert not AuditEvent.objects.exists()
    with transaction.atomic():
        kept = audit_record(action="dashboard.request.approved", actor=lead)
    assert kept.seq == 1  # the rolled-back event left no gap in the chain


def test_it_chains_each_event_to_the_one_before(lead: object) -> None:
    events = [audit_record(action="dashboard.environment.changed", actor=lead) for _ in range(3)]

    assert [event.seq for event in events] == [1, 2, 3]
    assert events[1].prev_hash == events[0].hash
    assert events[2].prev_hash == events[1].hash
    assert events[2].created_at >= events[0].created_at


def test_it_masks_secrets_in_the_payload() -> None:
    audit_record(
        action="dashboard.environment.changed",
        payload={
            "password": "hunter2",
            "API_TOKEN": "abc",
            "nested": {"client_secret": "s3", "items": ["postgresql://app:pa55@db:5432/m2"]},
            "url": "redis://:r3dis@cache:6379/0",
            "conninfo": "host=db user=app password=pa55 dbname=m2",
            "passes": 3,
            "database_url_changed": True,
        },
    )

    payload = AuditEvent.objects.get().payload
    text = str(payload)
    assert (
        "hunter2" not in text and "pa55" not in text and "r3dis" not in text and "s3'" not in text
    )
    assert payload["password"] == MASK and payload["API_TOKEN"] == MASK
    assert payload["nested"]["client_secret"] == MASK
    assert payload["nested"]["items"] == [f"postgresql://app:{MASK}@db:5432/m2"]
    assert payload["url"] == f"redis://:{MASK}@cache:6379/0"
    assert payload["conninfo"] == f"host=db user=app password={MASK} dbname=m2"
    assert payload["database_url_changed"] is True


def test_it_keeps_numbers_verifiable_after_postgres_normalises_them() -> None:
    event = audit_record(
        action="dashboard.run.succeeded", payload={"duration": 1e2, "ratio": 0.1, "big": 1e300}
    )

    stored = AuditEvent.objects.get(seq=event.seq)
    assert stored.hash == event_hash(stored.chain_fields())


def test_it_refuses_an_action_code_without_a_namespace() -> None:
    with pytest.raises(ValueError, match="namespaced"):
        audit_record(action="approved")
    assert not AuditEvent.objects.exists()


# --- the clock ------------------------------------------------------------------------


def _database_now() -> object:
    with connection.cursor() as cursor:
        cursor.execute("SELECT clock_timestamp()")
        return cursor.fetchone()[0]


def test_it_takes_event_times_from_the_database_clock_not_the_writers(
    monkeypatch: pytest.MonkeyPatch, lead: object
) -> None:
    """A host whose clock runs an hour fast must not push its time onto the chain."""
    real_now = timezone.now
    monkeypatch.setattr(timezone, "now", lambda: real_now() + timedelta(hours=1))

    first = audit_record(action="dashboard.environment.changed", actor=lead)
    second = audit_record(action="dashboard.environment.changed", actor=lead)

    database_now = _database_now()
    for event in (first, second):
        stored = AuditEvent.objects.get(seq=event.seq)
        assert abs(stored.created_at - database_now) < timedelta(seconds=5)
        assert stored.hash == event_hash(stored.chain_fields())
    assert second.created_at >= first.created_at


# --- the client's address behind proxies ------------------------------------------------


def _seen_ip(settings: object, proxies: int, remote: str, forwarded: str | None) -> str:
    settings.DASHBOARD_TRUSTED_PROXIES = proxies  # type: ignore[attr-defined]
    headers = {"REMOTE_ADDR": remote}
    if forwarded is not None:
        headers["HTTP_X_FORWARDED_FOR"] = forwarded
    http_request = RequestFactory().post("/audit/", **headers)
    return audit_record(action="dashboard.auth.login", http_request=http_request).client_ip


@pytest.mark.parametrize(
    ("proxies", "remote", "forwarded", "expected"),
    [
        # No proxy trusted: the peer, whatever the header says.
        (0, "203.0.113.9", "198.51.100.1", "203.0.113.9"),
        # One proxy (nginx at 10.0.0.2) appended the client it saw.
        (1, "10.0.0.2", "198.51.100.7", "198.51.100.7"),
        # Two: a CDN edge (192.0.2.50) then nginx; the CDN appended the client.
        (2, "10.0.0.2", "198.51.100.7, 192.0.2.50", "198.51.100.7"),
        # The client sent its own header: its left-most entry is not believed.
        (1, "10.0.0.2", "1.2.3.4, 198.51.100.7", "198.51.100.7"),
        (2, "10.0.0.2", "1.2.3.4, 198.51.100.7, 192.0.2.50", "198.51.100.7"),
        # Fewer entries than proxies: the left-most one, written by a proxy.
        (2, "10.0.0.2", "198.51.100.7", "198.51.100.7"),
        # No header at all: the peer.
        (1, "10.0.0.2", None, "10.0.0.2"),
        # A malformed entry where the client should be: the next hop to its right.
        (2, "10.0.0.2", "not-an-ip, 192.0.2.50", "192.0.2.50"),
        (1, "10.0.0.2", "1.2.3.4, <script>", "10.0.0.2"),
        # Ports and IPv6 as proxies write them.
        (1, "10.0.0.2", "198.51.100.7:51234", "198.51.100.7"),
        (1, "::1", "[2001:db8::5]:443", "2001:db8::5"),
    ],
)
def test_it_trusts_x_forwarded_for_only_as_deep_as_the_trusted_proxies(
    settings: object, proxies: int, remote: str, forwarded: str | None, expected: str
) -> None:
    assert _seen_ip(settings, proxies, remote, forwarded) == expected


def test_it_refuses_to_start_with_a_malformed_number_of_trusted_proxies() -> None:
    import os
    import subprocess
    import sys

    env = {**os.environ, "DASHBOARD_TRUSTED_PROXIES": "two", "DJANGO_DEBUG": "1"}
    started = subprocess.run(
        [sys.executable, "-c", "import dashboard.settings"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert started.returncode != 0
    assert (
        "ImproperlyConfigured: DASHBOARD_TRUSTED_PROXIES='two' is not an integer" in started.stderr
    )
