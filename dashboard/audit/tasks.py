"""Celery tasks of the audit trail (thin: call a service)."""

from __future__ import annotations

from celery import shared_task

from dashboard.audit.services import audit_chain_verify


@shared_task(name="audit.verify_chain", ignore_result=True)
def verify_chain() -> None:
    """Walk the chain and store the result (run daily by beat)."""
    audit_chain_verify()
