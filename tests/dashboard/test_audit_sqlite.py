"""The demo set-up (SQLite dashboard database): events chain, verify and export there too."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = """
import sys
from types import SimpleNamespace
import django
django.setup()
from django.core.management import call_command
from django.db import transaction
from dashboard.audit.selectors import EventFilters, audit_export_csv_lines, audit_export_jsonl_lines
from dashboard.audit.services import audit_record
call_command("migrate", verbosity=0)
for number in range(20):
    with transaction.atomic():
        audit_record(
            action="dashboard.run.started",
            environment=SimpleNamespace(pk=1, slug="production"),
            to_revisions=["abc123"],
            payload={"ratio": number / 3, "path": "C:\\\\temp", "password": "hunter2"},
        )
call_command("audit_verify")
from dashboard.audit.models import AuditEvent
from dashboard.audit.selectors import audit_event_page
day = AuditEvent.objects.get(seq=1).created_at.date()
shown = audit_event_page(
    filters=EventFilters(action="dashboard.run.*", revision="bc12", date_from=day, date_to=day),
    size=15,
)
print(f"page: {[event.seq for event in shown.events]} next {shown.next_before}")
out = sys.argv[1]
for name, lines in (("csv", audit_export_csv_lines), ("jsonl", audit_export_jsonl_lines)):
    with open(f"{out}/audit.{name}", "wb") as handle:
        handle.writelines(lines(filters=EventFilters(environment="production"), up_to_seq=1000))
"""


def test_it_chains_verifies_and_exports_on_sqlite(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "dashboard.settings",
        "DASHBOARD_DATABASE_URL": f"sqlite:///{tmp_path / 'dashboard.sqlite3'}",
        "DASHBOARD_VAR_DIR": str(tmp_path / "var"),
        "DJANGO_DEBUG": "1",
        "DJANGO_LOG_LEVEL": "WARNING",
    }
    run = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert "20 events checked; head #20" in run.stdout
    # The log's filters (action prefix, part of a revision, dates) work on SQLite too.
    assert f"page: {list(range(20, 5, -1))} next 6" in run.stdout

    for name in ("csv", "jsonl"):
        export = tmp_path / f"audit.{name}"
        verified = subprocess.run(
            [sys.executable, str(REPO_ROOT / "scripts" / "verify_audit_export.py"), str(export)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert verified.returncode == 0, verified.stderr
        assert "20 events checked (20 links)" in verified.stdout
        assert "hunter2" not in export.read_text(encoding="utf-8")
