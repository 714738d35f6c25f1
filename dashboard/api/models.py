"""Personal API tokens for CI pipelines.

A token is ``mqd_`` followed by 43 URL-safe characters from
``secrets.token_urlsafe(32)`` (256 bits of entropy). Only its SHA-256 is
stored: for a random secret of that size a fast hash is enough (nobody can
brute-force it), and it lets a request find its token with one indexed
lookup. The first 12 characters are kept in clear so people can tell their
tokens apart. The plaintext exists once, in the response that created it.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models


class ApiToken(models.Model):
    PREFIX = "mqd_"
    VISIBLE_CHARS = 12

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="api_tokens",
        help_text="The owner: every API call made with the token acts as this user.",
    )
    name = models.CharField(
        max_length=100, help_text="What the token is for, e.g. “GitLab CI: upgrade staging”."
    )
    prefix = models.CharField(max_length=VISIBLE_CHARS, editable=False)
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        verbose_name = "API token"
        verbose_name_plural = "API tokens"
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None
