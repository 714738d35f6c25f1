"""Personal API tokens in the admin: create (plaintext shown once), list, revoke.

People only see and revoke their own tokens (superusers see all). Tokens are
never edited or deleted: a revoked row stays, with its last use, for the record.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from dashboard.api.models import ApiToken
from dashboard.api.services import api_token_create, api_token_revoke


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ("name", "prefix_shown", "user", "created_at", "last_used_at", "state")
    list_filter = ("revoked_at",)
    search_fields = ("name", "prefix")
    actions = ["revoke_tokens"]
    readonly_fields = ("name", "user", "prefix_shown", "created_at", "last_used_at", "revoked_at")

    @admin.display(description="Token")
    def prefix_shown(self, token: ApiToken) -> str:
        return f"{token.prefix}…"

    @admin.display(description="State")
    def state(self, token: ApiToken) -> str:
        return "active" if token.is_active else "revoked"

    def get_queryset(self, request: HttpRequest) -> QuerySet[ApiToken]:
        queryset = super().get_queryset(request).select_related("user")
        if request.user.is_superuser:  # type: ignore[union-attr]
            return queryset
        return queryset.filter(user=request.user)  # type: ignore[misc]

    def get_fields(self, request: HttpRequest, obj: ApiToken | None = None) -> list[str]:
        return ["name"] if obj is None else list(self.readonly_fields)

    def get_readonly_fields(
        self, request: HttpRequest, obj: ApiToken | None = None
    ) -> tuple[str, ...]:
        return () if obj is None else self.readonly_fields

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: ApiToken, form: Any, change: bool) -> None:
        if change:  # nothing is editable after creation
            return
        token, plaintext = api_token_create(
            owner=request.user, name=obj.name, actor=request.user, http_request=request
        )
        obj.pk, obj.user, obj.prefix = token.pk, token.user, token.prefix
        obj.created_at = token.created_at
        request._api_token_plaintext = plaintext  # type: ignore[attr-defined]

    def response_add(
        self, request: HttpRequest, obj: ApiToken, post_url_continue: Any = None
    ) -> HttpResponse:
        """Show the plaintext now, in this response only; it is not stored anywhere."""
        context = {
            **self.admin_site.each_context(request),
            "title": "API token created",
            "opts": self.opts,
            "token": obj,
            "plaintext": request._api_token_plaintext,  # type: ignore[attr-defined]
        }
        response = TemplateResponse(request, "api/admin/token_created.html", context)
        response["Cache-Control"] = "no-store"
        return response

    @admin.action(description="Revoke selected API tokens", permissions=["change"])
    def revoke_tokens(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        revoked = sum(
            api_token_revoke(token=token, actor=request.user, http_request=request)
            for token in queryset
        )
        messages.success(request, f"{revoked} token(s) revoked; they stop working at once.")
