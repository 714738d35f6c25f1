"""E-mail to approvers when a request waits and to the requester when it ends.

Sent by tasks on the io queue (``approvals.notify_approvers`` /
``approvals.notify_requester``), enqueued after the transaction commits --
never by the worker that holds a target lock, and with ``EMAIL_TIMEOUT`` set,
so a silent SMTP server delays only mail. Mail failures are logged, never
raised: a decision must not be lost because an SMTP server is down.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.urls import reverse

from dashboard.approvals.models import MigrationRequest
from dashboard.approvals.services.dispatch import enqueue_on_commit

logger = logging.getLogger(__name__)


def _link(request: MigrationRequest) -> str:
    return settings.DASHBOARD_BASE_URL.rstrip("/") + reverse("approvals:detail", args=[request.pk])


def approver_emails(request: MigrationRequest) -> list[str]:
    """Addresses of the people who may approve ``request`` (never the requester)."""
    users = get_user_model().objects.filter(is_active=True).exclude(pk=request.requested_by_id)
    group_id = request.environment.approver_group_id
    if group_id is not None:
        users = users.filter(groups=group_id)
    return sorted(
        {u.email for u in users.exclude(email="") if u.has_perm("dashboard.approve_migration")}
    )


def notify_approvers(*, request_id: int) -> None:
    request = MigrationRequest.objects.select_related("environment", "requested_by").get(
        pk=request_id
    )
    recipients = approver_emails(request)
    if not recipients:
        return
    subject = f"[migrations] #{request.pk} waits for your approval: {request.direction} {request.environment}"
    body = (
        f"{request.requested_by} asks to {request.direction} {request.environment} to {request.target}"
        f" ({len(request.steps)} revision(s)).\n\nReason: {request.reason}\n\nReview: {_link(request)}\n"
    )
    _send(subject, body, recipients)


def notify_requester(*, request_id: int) -> None:
    request = MigrationRequest.objects.select_related("environment", "requested_by").get(
        pk=request_id
    )
    if not request.requested_by.email:
        return
    status = request.get_status_display().lower()
    subject = f"[migrations] #{request.pk} {status}: {request.environment}"
    body = f"Your request to {request.direction} {request.environment} to {request.target} is {status}.\n"
    if request.status_note:
        body += f"\n{request.status_note}\n"
    _send(subject, body + f"\n{_link(request)}\n", [request.requested_by.email])


def _send(subject: str, body: str, recipients: list[str]) -> None:
    try:
        send_mail(subject, body, None, recipients)
    except Exception:
        logger.exception("mail %r not sent", subject)


def notify_approvers_on_commit(*, request_id: int) -> None:
    enqueue_on_commit("approvals.notify_approvers", request_id)


def notify_requester_on_commit(*, request_id: int) -> None:
    enqueue_on_commit("approvals.notify_requester", request_id)
