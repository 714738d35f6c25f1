"""Session policy and re-authentication for sensitive actions.

- Every session ends after ``SESSION_COOKIE_AGE`` of inactivity (settings).
- People who can approve migrations also lose their session when the browser
  closes (``set_expiry(0)`` at login).
- ``recently_authenticated`` tells whether the password was typed within
  ``DASHBOARD_REAUTH_MAX_AGE``; approval views send the user to
  ``reauthenticate`` otherwise, which asks for the password again and comes
  back to ``next``.
- A lockout by django-axes is written to the audit log.
"""

from __future__ import annotations

import time
from typing import Any

from django import forms
from django.conf import settings
from django.contrib.auth import authenticate
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme

SESSION_AUTH_AT = "dashboard_auth_at"


def mark_authenticated(request: HttpRequest) -> None:
    request.session[SESSION_AUTH_AT] = time.time()


def recently_authenticated(request: HttpRequest) -> bool:
    """True if the user typed their password within ``DASHBOARD_REAUTH_MAX_AGE``."""
    auth_at = request.session.get(SESSION_AUTH_AT)
    if not isinstance(auth_at, int | float):
        return False
    return time.time() - auth_at <= settings.DASHBOARD_REAUTH_MAX_AGE.total_seconds()


def reauthenticate_url(next_url: str) -> str:
    from urllib.parse import urlencode

    return f"{reverse('dashboard:reauthenticate')}?{urlencode({'next': next_url})}"


def on_user_logged_in(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    if request is None or not hasattr(request, "session"):
        return
    mark_authenticated(request)
    if user.has_perm("dashboard.approve_migration"):
        request.session.set_expiry(0)  # approvers: the session ends with the browser


def on_user_locked_out(
    sender: Any, request: HttpRequest | None, username: str | None = None, **kwargs: Any
) -> None:
    from dashboard.audit.services import audit_record

    with transaction.atomic():
        audit_record(
            action="dashboard.auth.locked_out",
            http_request=request,
            payload={"username": username or "", "failure_limit": settings.AXES_FAILURE_LIMIT},
        )


class PasswordForm(forms.Form):
    password = forms.CharField(
        widget=forms.PasswordInput(attrs={"autofocus": True, "autocomplete": "current-password"})
    )


@login_required
def reauthenticate(request: HttpRequest) -> HttpResponse:
    """Ask for the password again before a sensitive action, then go back to ``next``."""
    next_url = request.POST.get("next") or request.GET.get("next") or reverse("dashboard:overview")
    if not url_has_allowed_host_and_scheme(
        next_url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        next_url = reverse("dashboard:overview")
    form = PasswordForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = authenticate(
            request, username=request.user.get_username(), password=form.cleaned_data["password"]
        )
        if user is not None and user.pk == request.user.pk:
            mark_authenticated(request)
            return redirect(next_url)
        form.add_error("password", "That password is not correct.")
    return render(
        request,
        "dashboard/reauthenticate.html",
        {"form": form, "next": next_url, "title": "Confirm your password"},
    )
