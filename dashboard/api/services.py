"""Create, revoke and check personal API tokens.

Contract: plaintext tokens are returned exactly once by ``api_token_create``
and never stored, logged or audited; audit events name a token by its
visible prefix. Creation and revocation write their audit event in the same
transaction as the change.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.http import HttpRequest
from django.utils import timezone

from dashboard.api.models import ApiToken
from dashboard.audit.services import audit_record

# last_used_at is written at most this often per token (no write per call).
LAST_USED_RESOLUTION = timedelta(minutes=1)


def api_token_hash(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode("utf-8")).hexdigest()


def _audit_payload(token: ApiToken) -> dict[str, Any]:
    # Keys avoid the word "token": the audit masker would hide the values.
    return {"prefix": token.prefix, "name": token.name, "owner": token.user.get_username()}


def api_token_create(
    *, owner: Any, name: str, actor: Any, http_request: HttpRequest | None = None
) -> tuple[ApiToken, str]:
    """Create a token for ``owner``; return the row and the plaintext (shown once)."""
    plaintext = ApiToken.PREFIX + secrets.token_urlsafe(32)
    with transaction.atomic():
        token = ApiToken.objects.create(
            user=owner,
            name=name.strip(),
            prefix=plaintext[: ApiToken.VISIBLE_CHARS],
            token_hash=api_token_hash(plaintext),
        )
        audit_record(
            action="dashboard.api.token_created",
            actor=actor,
            http_request=http_request,
            payload=_audit_payload(token),
        )
    return token, plaintext


def api_token_revoke(
    *, token: ApiToken, actor: Any, http_request: HttpRequest | None = None
) -> bool:
    """Revoke an active token (audited). Returns False if it was already revoked."""
    with transaction.atomic():
        changed = ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(
            revoked_at=timezone.now()
        )
        if not changed:
            return False
        token.refresh_from_db(fields=["revoked_at"])
        audit_record(
            action="dashboard.api.token_revoked",
            actor=actor,
            http_request=http_request,
            payload=_audit_payload(token),
        )
    return True


def api_token_authenticate(*, plaintext: str) -> ApiToken | None:
    """The active token with this plaintext whose owner is active, or None.

    Touches ``last_used_at`` at most once per ``LAST_USED_RESOLUTION`` (one
    conditional UPDATE, so concurrent calls do not pile up writes).
    """
    if not plaintext.startswith(ApiToken.PREFIX) or len(plaintext) > 200:
        return None
    token = (
        ApiToken.objects.select_related("user")
        .filter(token_hash=api_token_hash(plaintext), revoked_at__isnull=True)
        .first()
    )
    if token is None or not token.user.is_active:
        return None
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).filter(
            Q(last_used_at__isnull=True) | Q(last_used_at__lte=now - LAST_USED_RESOLUTION)
        ).update(last_used_at=now)
        token.last_used_at = now
    return token
