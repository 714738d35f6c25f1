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
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from dashboard.audit import services
from dashboard.audit.chain import event_hash
from dashboard.audit.models import AppendOnlyError, AuditEvent, ChainVerification
from dashboard.audit.services import audit_chain_check, audit_chain_verify, audit_record
from dashboard.audit.tasks import verify_chain

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


# --- incremental verification -------------------------------------------------------


def _tamper(statement: str) -> None:
    """What a superuser who bypasses the trigger could do (rolled back with the test)."""
    _sql("ALTER TABLE audit_auditevent DISABLE TRIGGER audit_event_no_update_delete")
    _sql(statement)


def test_it_verifies_incrementally_from_the_last_checkpoint(chain: list[AuditEvent]) -> None:
    first = audit_chain_verify()  # no checkpoint yet: from #1
    for number in range(3):
        audit_record(action="dashboard.environment.changed", payload={"later": number})
    second = audit_chain_verify()
    out = io.StringIO()
    call_command("audit_verify", stdout=out)

    assert (first.mode, first.from_seq, first.events_checked, first.head_seq) == ("full", 1, 5, 5)
    # The checkpoint #5 re-hashed, then #6 (the first verification's event) to #9.
    assert (second.mode, second.from_seq, second.events_checked, second.head_seq) == (
        "incremental",
        5,
        5,
        9,
    )
    assert second.ok and second.message == "5 events checked from #5 (incremental), chain intact"
    head = AuditEvent.objects.get(seq=10)
    assert f"2 events checked; head #10 {head.hash} (incremental from #9)" in out.getvalue()
    recorded = AuditEvent.objects.get(seq=11).payload  # the command's own verified event
    assert (recorded["mode"], recorded["from_seq"], recorded["ok"]) == ("incremental", 9, True)


def test_it_walks_in_keyset_batches_and_holds_no_cursor(
    chain: list[AuditEvent], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cursor held open (``iterator()``: WITH HOLD in autocommit) makes PostgreSQL
    materialise the whole table before the first row; the walk must not use one."""
    monkeypatch.setattr(services, "VERIFY_BATCH", 2, raising=False)
    open_cursors: list[tuple[object, ...]] = []
    real_hash = services.event_hash

    def hash_and_look_for_cursors(fields: dict[str, object]) -> str:
        with connection.cursor() as cursor:
            cursor.execute("SELECT name, is_holdable FROM pg_cursors")
            open_cursors.extend(cursor.fetchall())
        return real_hash(fields)

    monkeypatch.setattr(services, "event_hash", hash_and_look_for_cursors)

    with CaptureQueriesContext(connection) as queries:
        check = audit_chain_check()

    assert check.ok and check.events_checked == 5
    assert open_cursors == []
    batches = [query["sql"] for query in queries if query["sql"].endswith("LIMIT 2")]
    assert len(batches) == 3  # 2 + 2 + 1 events


def test_it_finds_tampering_before_the_checkpoint_with_the_full_walk(
    chain: list[AuditEvent],
) -> None:
    audit_chain_verify()  # checkpoint: #5
    _tamper("""UPDATE audit_auditevent SET payload = '{"n": 666}' WHERE seq = 2""")

    daily = audit_chain_verify()
    with pytest.raises(CommandError) as full:
        call_command("audit_verify", "--full")
    verify_chain()  # the next daily run, after a failed one

    # By design the daily run starts at its checkpoint and does not see #2.
    assert daily.ok and (daily.mode, daily.from_seq) == ("incremental", 5)
    assert "event #2: its stored hash does not match its contents" in str(full.value)
    assert full.value.returncode == 1
    failed, after = ChainVerification.objects.order_by("-checked_at", "-pk")[:2][::-1]
    assert (failed.ok, failed.mode, failed.first_bad_seq) == (False, "full", 2)
    # A known break stays reported: after a failed walk the daily run walks in full.
    assert (after.ok, after.mode, after.first_bad_seq) == (False, "full", 2)


def test_it_finds_tampering_with_the_checkpoint_event_in_the_incremental_walk(
    chain: list[AuditEvent],
) -> None:
    audit_chain_verify()  # checkpoint: #5
    _tamper("""UPDATE audit_auditevent SET payload = '{"n": 666}' WHERE seq = 5""")

    with pytest.raises(CommandError) as failure:
        call_command("audit_verify")

    assert "event #5 (the checkpoint): its stored hash does not match" in str(failure.value)
    verification = ChainVerification.objects.order_by("-checked_at", "-pk").first()
    assert (verification.ok, verification.mode, verification.first_bad_seq) == (
        False,
        "incremental",
        5,
    )


def test_it_notices_a_checkpoint_event_rewritten_with_a_matching_hash(
    chain: list[AuditEvent],
) -> None:
    audit_chain_verify()  # checkpoint: #5
    forged = AuditEvent.objects.get(seq=5).chain_fields()
    forged["payload"] = {"n": 666}
    _tamper(
        f"""UPDATE audit_auditevent SET payload = '{{"n": 666}}', hash = '{event_hash(forged)}'
            WHERE seq = 5"""
    )

    verification = audit_chain_verify()

    assert not verification.ok and verification.first_bad_seq == 5
    assert "no longer the one verified" in verification.message


def _export_to(
    tmp_path: Path, auditor: object, name: str, suffix: str, filters: dict[str, str] | None = None
) -> Path:
    client = Client()
    client.force_login(auditor)
    response = client.post(reverse(name), filters or {})
    assert response.status_code == 200
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
    path = _export_to(tmp_path, auditor, "audit:export_csv", "csv", {"action": "dashboard.auth.*"})

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
