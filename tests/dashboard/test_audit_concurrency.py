"""Eight processes appending at once on PostgreSQL still make one unbroken chain."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection
from sqlalchemy.engine import make_url

from dashboard.audit.models import AuditEvent
from dashboard.audit.services import audit_chain_check

REPO_ROOT = Path(__file__).resolve().parents[2]
WRITERS = 8
EVENTS_EACH = 200
# A fresh interpreter per writer (no state inherited by fork): it sets Django
# up, says it is ready, waits for the common start signal, then appends its
# events, one transaction each.
WRITER = """
import sys, time
from pathlib import Path
import django
django.setup()
from django.db import transaction
from dashboard.audit.services import audit_record
ready, go, count = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
ready.touch()
deadline = time.monotonic() + 60
while not go.exists():
    if time.monotonic() > deadline:
        sys.exit("no start signal")
    time.sleep(0.01)
for number in range(count):
    with transaction.atomic():
        audit_record(action="dashboard.run.started", payload={"n": number})
"""


def _environment() -> dict[str, str]:
    url = make_url(os.environ["TEST_POSTGRES_URL"]).set(
        drivername="postgresql", database=connection.settings_dict["NAME"]
    )
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DASHBOARD_DATABASE_URL": url.render_as_string(hide_password=False),
    }


def _wait_until(predicate: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "writers did not get ready in time"
        time.sleep(0.05)


@pytest.mark.django_db(transaction=True)
def test_it_keeps_one_chain_with_eight_processes_writing_200_events_each(tmp_path: Path) -> None:
    go = tmp_path / "go"
    ready = [tmp_path / f"ready-{number}" for number in range(WRITERS)]
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(flag), str(go), str(EVENTS_EACH)],
            cwd=REPO_ROOT,
            env=_environment(),
            stderr=subprocess.PIPE,
            text=True,
        )
        for flag in ready
    ]
    try:
        _wait_until(lambda: all(flag.exists() for flag in ready), timeout=90)
        go.touch()
        deadline = time.monotonic() + 150
        errors = [
            writer.communicate(timeout=max(1, deadline - time.monotonic()))[1] for writer in writers
        ]
    finally:
        for writer in writers:
            if writer.poll() is None:
                writer.kill()
                writer.wait(timeout=10)
    assert [writer.returncode for writer in writers] == [0] * WRITERS, errors

    check = audit_chain_check()
    assert check.ok, check.message
    assert check.events_checked == WRITERS * EVENTS_EACH
    assert list(AuditEvent.objects.order_by("seq").values_list("seq", flat=True)) == list(
        range(1, WRITERS * EVENTS_EACH + 1)
    )
    per_process = list(AuditEvent.objects.values_list("actor_pid", flat=True))
    assert sorted(per_process.count(pid) for pid in set(per_process)) == [EVENTS_EACH] * WRITERS
    assert set(per_process) == {writer.pid for writer in writers}

    out = io.StringIO()
    call_command("audit_verify", stdout=out)
    assert f"1600 events checked; head #1600 {check.head_hash}" in out.getvalue()
