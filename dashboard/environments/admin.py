"""Environments in the admin: edit configuration and approval policy; every change is audited.

The changelist shows the pipeline (single environments and fleets); a fleet's
targets only through the "kind" filter or a search, so 500 targets do not
drown the list. A target's settings are its fleet's (read-only here): saving
a fleet copies them onto its targets, as ``load_environments`` does.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db import transaction
from django.db.models import Count, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.http import HttpRequest

from dashboard.environments.config_file import AUDIT_ACTION, TARGET_COPIES
from dashboard.environments.models import Environment
from dashboard.migrator.secrets import SecretError, mask_url, resolve_database_url


def _audit(request: HttpRequest, environment: Environment, payload: dict[str, Any]) -> None:
    from dashboard.audit.services import audit_record

    audit_record(
        action=AUDIT_ACTION,
        actor=request.user,
        environment=environment,
        http_request=request,
        payload={"via": "admin", **payload},
    )


class EnvironmentKindFilter(admin.SimpleListFilter):
    """Single environments and fleets by default; targets when asked for (all, or one fleet's)."""

    title = "kind"
    parameter_name = "kind"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        fleets = Environment.objects.filter(is_fleet=True).order_by("position", "name")
        return [
            ("single", "Single environments"),
            ("fleets", "Fleets"),
            ("targets", "Targets of every fleet"),
            *(
                (f"targets:{slug}", f"Targets of {name}")
                for slug, name in fleets.values_list("slug", "name")
            ),
            ("all", "Everything, targets too"),
        ]

    def choices(self, changelist: Any) -> Any:
        # No parameter is the pipeline (Django's default would say "All").
        yield {
            "selected": self.value() is None,
            "query_string": changelist.get_query_string(remove=[self.parameter_name]),
            "display": "Pipeline (no targets)",
        }
        for lookup, title in self.lookup_choices:
            yield {
                "selected": self.value() == lookup,
                "query_string": changelist.get_query_string({self.parameter_name: lookup}),
                "display": title,
            }

    def queryset(self, request: HttpRequest, queryset: QuerySet[Environment]) -> Any:
        value = self.value()
        if value is None:
            # A search looks among the targets too (finding "acme" is why one searches).
            return queryset if request.GET.get("q") else queryset.filter(fleet__isnull=True)
        if value == "single":
            return queryset.filter(fleet__isnull=True, is_fleet=False)
        if value == "fleets":
            return queryset.filter(is_fleet=True)
        if value == "targets":
            return queryset.filter(fleet__isnull=False)
        if value.startswith("targets:"):
            return queryset.filter(fleet__slug=value.removeprefix("targets:"))
        return queryset


FLEET_FIELDS = ("targets_file", "waves", "parallelism", "halt_after_failures", "soak", "gate_sql")
TARGET_FIELDS = ("fleet", "target_name", "fleet_position", "retired_at")


@admin.register(Environment)
class EnvironmentAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "kind", "position", "status_state", "status_refreshed_at")
    list_filter = (EnvironmentKindFilter, "status_state")
    list_select_related = ("fleet",)
    search_fields = ("name", "slug")
    ordering = ("position", "fleet_position", "name")
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

    def get_queryset(self, request: HttpRequest) -> QuerySet[Environment]:
        current = Environment.objects.filter(fleet=OuterRef("pk"), retired_at__isnull=True)
        count = current.order_by().values("fleet").annotate(n=Count("pk")).values("n")
        return super().get_queryset(request).annotate(target_count=Coalesce(Subquery(count), 0))

    def get_fieldsets(self, request: HttpRequest, obj: Environment | None = None) -> Any:
        fieldsets = list(self.fieldsets or ())
        if obj is not None and obj.is_fleet:
            fieldsets.insert(
                1,
                ("Fleet (rollout policy, from the TOML)", {"fields": ("is_fleet", *FLEET_FIELDS)}),
            )
        elif obj is not None and obj.is_target:
            fieldsets.insert(
                1, ("Target of a fleet (settings come from the fleet)", {"fields": TARGET_FIELDS})
            )
        return fieldsets

    def get_readonly_fields(self, request: HttpRequest, obj: Environment | None = None) -> Any:
        # A fleet's targets and rollout policy come from the environments TOML (validated there).
        readonly = [*self.readonly_fields, "is_fleet", *FLEET_FIELDS, *TARGET_FIELDS]
        if obj is not None and obj.is_target:
            readonly += ["name", "slug", *TARGET_COPIES]
        return readonly

    def get_prepopulated_fields(self, request: HttpRequest, obj: Environment | None = None) -> Any:
        return (
            {}
            if obj is not None and obj.is_target
            else super().get_prepopulated_fields(request, obj)
        )

    @admin.display(description="Kind", ordering="is_fleet")
    def kind(self, obj: Environment) -> str:
        if obj.is_fleet:
            count = getattr(obj, "target_count", 0)
            return f"fleet of {count} target{'s' if count != 1 else ''}"
        if obj.is_target:
            return f"target of {obj.fleet.name if obj.fleet else obj.fleet_slug}"
        return "single"

    @admin.display(description="Database URL (masked)")
    def masked_database_url(self, obj: Environment) -> str:
        if not obj.pk:
            return "—"
        if obj.is_fleet:
            try:
                template = resolve_database_url(url_env=obj.url_env, url_file=obj.url_file)
            except SecretError as exc:
                return f"({exc})"
            return f"template {mask_url(template)} (each target puts its name in {{target}})"
        return obj.masked_url()

    def save_model(self, request: HttpRequest, obj: Environment, form: Any, change: bool) -> None:
        with transaction.atomic():
            super().save_model(request, obj, form, change)
            if obj.is_fleet:  # a target runs with its fleet's settings
                copies = {key: getattr(obj, key) for key in TARGET_COPIES}
                Environment.objects.filter(fleet=obj).update(**copies)
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
