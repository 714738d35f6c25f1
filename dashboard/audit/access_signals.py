"""Changes of who may do what, written to the audit log.

Group membership, permissions of users and groups, and the staff, superuser
and active flags decide who can approve a production migration, so every
change of them is an event (``dashboard.auth.user_created``,
``dashboard.auth.user_changed``, ``dashboard.auth.groups_changed``,
``dashboard.auth.permissions_changed``), whether made in the admin, a shell
or a management command. The actor is the signed-in user when the change
comes from a request (the admin), else the system.

The role sync that runs after every ``migrate`` (``dashboard.roles``) is the
product's own definition of the roles, not a decision by a person; it runs
inside ``suppressed()`` and is not recorded.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.db.models.signals import m2m_changed, post_save, pre_save
from django.dispatch import receiver

from dashboard.audit.services import audit_record

_SUPPRESSED: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "audit_access_suppressed", default=False
)
_REQUEST: contextvars.ContextVar[Any] = contextvars.ContextVar("audit_access_request", default=None)
_FLAGS = ("is_active", "is_staff", "is_superuser")
User = get_user_model()


@contextlib.contextmanager
def suppressed() -> Iterator[None]:
    token = _SUPPRESSED.set(True)
    try:
        yield
    finally:
        _SUPPRESSED.reset(token)


class CurrentRequestMiddleware:
    """Remembers the request being served, so signal receivers know who acts."""

    def __init__(self, get_response: Any) -> None:
        self.get_response = get_response

    def __call__(self, request: Any) -> Any:
        token = _REQUEST.set(request)
        try:
            return self.get_response(request)
        finally:
            _REQUEST.reset(token)


def _record(action: str, payload: dict[str, Any]) -> None:
    if _SUPPRESSED.get():
        return
    request = _REQUEST.get()
    user = getattr(request, "user", None)
    actor = user if getattr(user, "is_authenticated", False) else None
    audit_record(action=action, actor=actor, http_request=request, payload=payload)


@receiver(pre_save, sender=User, dispatch_uid="audit_user_flags_before")
def _remember_flags(sender: Any, instance: Any, raw: bool = False, **kwargs: Any) -> None:
    if raw or instance.pk is None:
        return
    before = sender.objects.filter(pk=instance.pk).values(*_FLAGS).first()
    instance._audit_flags_before = before


@receiver(post_save, sender=User, dispatch_uid="audit_user_flags_after")
def _record_flags(
    sender: Any, instance: Any, created: bool, raw: bool = False, **kwargs: Any
) -> None:
    if raw:
        return
    after = {flag: getattr(instance, flag) for flag in _FLAGS}
    if created:
        _record("dashboard.auth.user_created", {"user": instance.get_username(), **after})
        return
    before = getattr(instance, "_audit_flags_before", None) or {}
    changed = {
        flag: [before.get(flag), after[flag]] for flag in _FLAGS if before.get(flag) != after[flag]
    }
    if changed:
        _record(
            "dashboard.auth.user_changed", {"user": instance.get_username(), "changed": changed}
        )


def _names(model: Any, pks: Any) -> list[str]:
    if model is Permission:
        rows = Permission.objects.filter(pk__in=pks).values_list(
            "content_type__app_label", "codename"
        )
        return sorted(f"{app}.{codename}" for app, codename in rows)
    if model is Group:
        return sorted(Group.objects.filter(pk__in=pks).values_list("name", flat=True))
    return sorted(model.objects.filter(pk__in=pks).values_list(model.USERNAME_FIELD, flat=True))


def _subject(instance: Any) -> dict[str, str]:
    if isinstance(instance, Group):
        return {"group": instance.name}
    return {"user": instance.get_username()}


_VERBS = {"post_add": "added", "post_remove": "removed", "pre_clear": "cleared"}


def _membership_changed(
    action_code: str, instance: Any, action: str, model: Any, pk_set: Any, related: Any
) -> None:
    verb = _VERBS.get(action)
    if verb is None:
        return
    if action == "pre_clear":
        pks = list(related.values_list("pk", flat=True))
        if not pks:
            return
    else:
        pks = list(pk_set or ())
    _record(action_code, {**_subject(instance), verb: _names(model, pks)})


@receiver(m2m_changed, sender=User.groups.through, dispatch_uid="audit_user_groups")
def _groups_changed(
    sender: Any, instance: Any, action: str, reverse: bool, model: Any, pk_set: Any, **kwargs: Any
) -> None:
    related = instance.user_set.all() if reverse else instance.groups.all()
    _membership_changed("dashboard.auth.groups_changed", instance, action, model, pk_set, related)


@receiver(m2m_changed, sender=User.user_permissions.through, dispatch_uid="audit_user_permissions")
def _user_permissions_changed(
    sender: Any, instance: Any, action: str, reverse: bool, model: Any, pk_set: Any, **kwargs: Any
) -> None:
    if reverse:  # permission.user_set.add(...): the subject is a permission
        return
    _membership_changed(
        "dashboard.auth.permissions_changed",
        instance,
        action,
        model,
        pk_set,
        instance.user_permissions.all(),
    )


@receiver(m2m_changed, sender=Group.permissions.through, dispatch_uid="audit_group_permissions")
def _group_permissions_changed(
    sender: Any, instance: Any, action: str, reverse: bool, model: Any, pk_set: Any, **kwargs: Any
) -> None:
    if reverse:
        return
    _membership_changed(
        "dashboard.auth.permissions_changed",
        instance,
        action,
        model,
        pk_set,
        instance.permissions.all(),
    )
