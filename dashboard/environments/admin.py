"""Environments in the admin: edit configuration and approval policy; every change is audited."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db import transaction
from django.http import HttpRequest

from dashboard.environments.config_file import AUDIT_ACTION
from dashboard.environments.models import Environment


def _audit(request: HttpRequest, environment: Environment, payload: dict[str, Any]) -> None:
    from dashboard.audit.services import audit_record

    audit_record(
        action=AUDIT_ACTION,
        actor=request.user,
        environment=environment,
        http_request=request,
        payload={"via": "admin", **payload},
    )


@admin.register(Environment)
class EnvironmentAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "position", "status_state", "status_refreshed_at")
    list_filter = ("status_state",)
    search_fields = ("name", "slug")
    ordering = ("position", "name")
    prepopulated_fields = {"slug": ("name",)}
    readonly_fields = (
        "masked_database_url",
        "status_state",
        "current_heads",
        "pending",
        "status_error",
        "status_refreshed_at",
        "status_refresh_queued_at",
    )
    fieldsets = (
        (None, {"fields": ("name", "slug", "position", "description")}),
        (
            "Database (the URL itself is a secret: only where it comes from is stored)",
            {
                "fields": (
                    "url_env",
                    "url_file",
                    "masked_database_url",
                    "version_table",
                    "version_table_schema",
                )
            },
        ),
        (
            "Execution",
            {
                "fields": (
                    "lock_timeout",
                    "statement_timeout",
                    "lock_wait",
                    "run_timeout",
                    "idle_in_transaction_timeout",
                    "transaction_per_migration",
                )
            },
        ),
        ("Approval policy", {"fields": ("required_approvals", "approver_group", "approval_ttl")}),
        (
            "Last status read",
            {
                "fields": (
                    "status_state",
                    "current_heads",
                    "pending",
                    "status_error",
                    "status_refreshed_at",
                    "status_refresh_queued_at",
                )
            },
        ),
    )

    @admin.display(description="Database URL (masked)")
    def masked_database_url(self, obj: Environment) -> str:
        return obj.masked_url() if obj.pk else "—"

    def save_model(self, request: HttpRequest, obj: Environment, form: Any, change: bool) -> None:
        with transaction.atomic():
            super().save_model(request, obj, form, change)
            payload = (
                {
                    "changed": {
                        name: [str(form.initial.get(name)), str(form.cleaned_data.get(name))]
                        for name in form.changed_data
                    }
                }
                if change
                else {"created": True}
            )
            _audit(request, obj, payload)

    def delete_model(self, request: HttpRequest, obj: Environment) -> None:
        with transaction.atomic():
            _audit(request, obj, {"deleted": True})
            super().delete_model(request, obj)

    def delete_queryset(self, request: HttpRequest, queryset: Any) -> None:
        with transaction.atomic():
            for obj in queryset:
                _audit(request, obj, {"deleted": True})
            super().delete_queryset(request, queryset)
