"""Execution under faults: database-clock times, cancel, deadlines, pinned settings,
append-only run logs (the executed SQL), and the environments' denormalised last run.

The trigger makes ``approvals_runlogline`` append-only on PostgreSQL, with the
same test-only TRUNCATE escape hatch as the audit log (``dashboard.append_only``).
"""

from typing import Any

import django.db.models.deletion
import django.db.models.functions.datetime
from django.conf import settings
from django.db import migrations, models

from dashboard.append_only import postgres_append_only

# The same trigger as the audit log's (``dashboard.append_only``).
install_trigger, remove_trigger = postgres_append_only(table="approvals_runlogline", name="run_log")


def backfill_last_run(apps: Any, schema_editor: Any) -> None:
    """Copy every environment's latest run onto its row (the overview reads only that)."""
    Environment = apps.get_model("environments", "Environment")
    Run = apps.get_model("approvals", "Run")
    for environment in Environment.objects.all():
        run = (
            Run.objects.filter(request__environment=environment)
            .order_by("-started_at", "-id")
            .first()
        )
        if run is not None:
            Environment.objects.filter(pk=environment.pk).update(
                last_run_outcome=run.outcome,
                last_run_started_at=run.started_at,
                last_run_request_id=run.request_id,
            )


class Migration(migrations.Migration):
    dependencies = [
        ("approvals", "0001_initial"),
        ("environments", "0003_run_settings_and_overview_summary"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="migrationrequest",
            name="env_sha256",
            field=models.CharField(
                blank=True, help_text="SHA-256 of the project's env.py when pinned", max_length=64
            ),
        ),
        migrations.AddField(
            model_name="migrationrequest",
            name="pinned_settings",
            field=models.JSONField(
                blank=True,
                default=dict,
                help_text="The environment's execution settings at request time (URL source, timeouts…)",
            ),
        ),
        migrations.AddField(
            model_name="migrationrequest",
            name="status_note",
            field=models.CharField(blank=True, max_length=500),
        ),
        migrations.AddField(
            model_name="run",
            name="cancel_requested_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="run",
            name="cancel_requested_by",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.AddField(
            model_name="run",
            name="deadline_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="run",
            name="executed_sql_sha256",
            field=models.CharField(blank=True, max_length=64),
        ),
        migrations.AddField(
            model_name="run",
            name="executed_statements",
            field=models.PositiveIntegerField(default=0),
        ),
        migrations.AddField(
            model_name="run",
            name="retry_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="run",
            name="target_backend_pid",
            field=models.IntegerField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="runprogress",
            name="started_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AlterField(
            model_name="migrationrequest",
            name="status",
            field=models.CharField(
                choices=[
                    ("pending", "Waiting for approval"),
                    ("approved", "Approved, queued"),
                    ("running", "Running"),
                    ("unknown", "Outcome unknown"),
                    ("succeeded", "Succeeded"),
                    ("failed", "Failed"),
                    ("interrupted", "Interrupted"),
                    ("rejected", "Rejected"),
                    ("cancelled", "Cancelled"),
                    ("stale", "Stale"),
                ],
                default="pending",
                max_length=12,
            ),
        ),
        migrations.AlterField(
            model_name="run",
            name="heartbeat_at",
            field=models.DateTimeField(db_default=django.db.models.functions.datetime.Now()),
        ),
        migrations.AlterField(
            model_name="run",
            name="outcome",
            field=models.CharField(
                choices=[
                    ("running", "Running"),
                    ("unknown", "Outcome unknown"),
                    ("succeeded", "Succeeded"),
                    ("failed", "Failed"),
                    ("interrupted", "Interrupted"),
                    ("cancelled", "Cancelled"),
                ],
                default="running",
                max_length=12,
            ),
        ),
        migrations.AlterField(
            model_name="run",
            name="started_at",
            field=models.DateTimeField(db_default=django.db.models.functions.datetime.Now()),
        ),
        migrations.AlterField(
            model_name="runlogline",
            name="created_at",
            field=models.DateTimeField(db_default=django.db.models.functions.datetime.Now()),
        ),
        migrations.AlterField(
            model_name="runlogline",
            name="run",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT,
                related_name="log_lines",
                to="approvals.run",
            ),
        ),
        migrations.AlterField(
            model_name="runprogress",
            name="applied_at",
            field=models.DateTimeField(db_default=django.db.models.functions.datetime.Now()),
        ),
        migrations.AlterField(
            model_name="runprogress",
            name="run",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT,
                related_name="progress",
                to="approvals.run",
            ),
        ),
        migrations.RunPython(install_trigger, remove_trigger, elidable=False),
        migrations.RunPython(backfill_last_run, migrations.RunPython.noop, elidable=False),
    ]
