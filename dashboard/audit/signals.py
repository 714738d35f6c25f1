"""Authentication events: Django's auth signals written to the audit log.

Each receiver writes in a transaction of its own (``audit_record`` opens one
when called outside a transaction); a failed login records the username that
was tried, never the password (Django already masks it in ``credentials``).
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver
from django.http import HttpRequest

from dashboard.audit.services import audit_record, defuse_formula


@receiver(user_logged_in, dispatch_uid="audit_user_logged_in")
def record_login(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    audit_record(action="dashboard.auth.login", actor=user, http_request=request)


@receiver(user_login_failed, dispatch_uid="audit_user_login_failed")
def record_login_failed(
    sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None, **kwargs: Any
) -> None:
    username = defuse_formula(str(credentials.get("username", ""))[:150])
    audit_record(
        action="dashboard.auth.login_failed",
        http_request=request,
        payload={"username": username},
    )


@receiver(user_logged_out, dispatch_uid="audit_user_logged_out")
def record_logout(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    if user is None:  # logging out a session that had no user
        return
    audit_record(action="dashboard.auth.logout", actor=user, http_request=request)
