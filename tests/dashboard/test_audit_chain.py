"""Tamper evidence: append-only model, PostgreSQL trigger, audit_verify, offline verification."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction
from django.test import Client
from django.urls import reverse

from dashboard.audit.models import AppendOnlyError, AuditEvent, ChainVerification
from dashboard.audit.services import audit_record

pytestmark = pytest.mark.django_db
REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def chain() -> list[AuditEvent]:
    return [
        audit_record(action="dashboard.environment.changed", payload={"n": n, "ratio": n / 3})
        for n in range(5)
    ]


def _sql(statement: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(statement)


def test_it_refuses_updates_and_deletes_through_the_orm(chain: list[AuditEvent]) -> None:
    event = AuditEvent.objects.get(seq=2)
    event.action = "dashboard.tampered"

    with pytest.raises(AppendOnlyError):
        event.save()
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.filter(seq=2).update(action="dashboard.tampered")
    with pytest.raises(AppendOnlyError):
        event.delete()
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.all().delete()

    assert AuditEvent.objects.get(seq=2).action == "dashboard.environment.changed"
    assert AuditEvent.objects.count() == 5


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_auditevent SET action = 'dashboard.tampered' WHERE seq = 2",
        "DELETE FROM audit_auditevent WHERE seq = 5",
        # The test database allows TRUNCATE for Django's flush; a real
        # deployment never sets this, so the statement meets the default.
        "SET LOCAL dashboard.audit_allow_truncate = ''; TRUNCATE audit_auditevent",
    ],
)
def test_it_has_the_database_reject_raw_changes(chain: list[AuditEvent], statement: str) -> None:
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        _sql(statement)

    assert (
        list(AuditEvent.objects.order_by("seq").values_list("action", flat=True))
        == ["dashboard.environment.changed"] * 5
    )


def test_it_verifies_an_intact_chain_and_shows_the_result(
    chain: list[AuditEvent], auditor: object
) -> None:
    out = io.StringIO()

    call_command("audit_verify", stdout=out)

    assert f"5 events checked; head #5 {chain[-1].hash}" in out.getvalue()
    verification = ChainVerification.objects.get()
    assert verification.ok and verification.events_checked == 5
    assert AuditEvent.objects.order_by("-seq").first().action == "dashboard.audit.verified"
    client = Client()
    client.force_login(auditor)
    page = client.get(reverse("audit:log")).content.decode()
    assert "intact" in page and "5 events checked" in page


def test_it_names_the_altered_event_when_a_superuser_bypassed_the_trigger(
    chain: list[AuditEvent],
) -> None:
    _sql("ALTER TABLE audit_auditevent DISABLE TRIGGER audit_event_no_update_delete")
    _sql("""UPDATE audit_auditevent SET payload = '{"n": 666}' WHERE seq = 3""")

    with pytest.raises(CommandError) as failure:
        call_command("audit_verify")

    assert failure.value.returncode == 1
    assert "event #3" in str(failure.value) and "2 events checked" in str(failure.value)
    verification = ChainVerification.objects.get()
    assert not verification.ok and verification.first_bad_seq == 3


def test_it_notices_a_deleted_event(chain: list[AuditEvent]) -> None:
    _sql("ALTER TABLE audit_auditevent DISABLE TRIGGER audit_event_no_update_delete")
    _sql("DELETE FROM audit_auditevent WHERE seq = 4")

    with pytest.raises(CommandError, match="event #5: sequence gap"):
        call_command("audit_verify")


def _export_to(tmp_path: Path, auditor: object, name: str, suffix: str, query: str = "") -> Path:
    client = Client()
    client.force_login(auditor)
    response = client.get(reverse(name) + query)
    path = tmp_path / f"export.{suffix}"
    path.write_bytes(b"".join(response.streaming_content))
    return path


def _verify_offline(path: Path) -> subprocess.CompletedProcess[str]:
    script = REPO_ROOT / "scripts" / "verify_audit_export.py"
    return subprocess.run(
        [sys.executable, str(script), str(path)], capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    ("name", "suffix"), [("audit:export_csv", "csv"), ("audit:export_jsonl", "jsonl")]
)
def test_it_exports_files_that_verify_offline(
    chain: list[AuditEvent], auditor: object, tmp_path: Path, name: str, suffix: str
) -> None:
    audit_record(
        action="dashboard.run.failed",
        payload={
            "url": "postgresql://u:pw@db/x",
            "é": "ü",
            "path": "C:\\temp\\new",
            "error": 'relation "x" does not exist\n\tLINE 1: ...',
            "ratio": 0.1,
        },
    )
    path = _export_to(tmp_path, auditor, name, suffix)

    standalone = _verify_offline(path)
    out = io.StringIO()
    call_command("audit_verify", "--file", str(path), stdout=out)

    assert standalone.returncode == 0, standalone.stderr
    assert "7 events checked (7 links)" in standalone.stdout  # 5 + failed run + login
    assert "7 events checked (7 links)" in out.getvalue()
    exported = path.read_text(encoding="utf-8")
    assert "pw@" not in exported and "C:" in exported


def test_it_verifies_a_filtered_export_row_by_row(
    chain: list[AuditEvent], auditor: object, tmp_path: Path
) -> None:
    path = _export_to(tmp_path, auditor, "audit:export_csv", "csv", "?action=dashboard.auth.*")

    result = _verify_offline(path)

    assert result.returncode == 0, result.stderr
    assert "1 events checked (0 links)" in result.stdout


def test_it_flags_an_edited_export_file(
    chain: list[AuditEvent], auditor: object, tmp_path: Path
) -> None:
    path = _export_to(tmp_path, auditor, "audit:export_csv", "csv")
    rows = list(csv.reader(path.open(encoding="utf-8")))
    rows[3][5] = "mallory"  # actor_username of event #3
    with path.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle, lineterminator="\n").writerows(rows)

    result = _verify_offline(path)

    assert result.returncode == 1
    assert "event #3: its hash does not match" in result.stderr
    with pytest.raises(CommandError, match="event #3"):
        call_command("audit_verify", "--file", str(path))
