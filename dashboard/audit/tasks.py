"""Celery tasks of the audit trail (thin: call a service)."""

from __future__ import annotations

from celery import shared_task

from dashboard.audit.services import audit_chain_verify


@shared_task(name="audit.verify_chain", ignore_result=True)
def verify_chain() -> None:
    """Verify the events since the last checkpoint and store the result (run daily by beat).

    Incremental: a day's new events, not the whole log. A full walk is
    ``manage.py audit_verify --full``.
    """
    audit_chain_verify(full=False)
