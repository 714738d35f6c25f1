"""The three roles of the product and the permissions each one holds.

``ROLE_PERMISSIONS`` is the single source of truth. The data migration
``dashboard/migrations/0002_roles`` creates the groups with the custom
permissions; because the domain apps' model permissions only exist after their
own migrations ran, ``sync_role_permissions`` is also connected to
``post_migrate`` and brings every group up to this map after each ``migrate``
(it only adds; permissions given by hand in the admin are kept).
"""

from __future__ import annotations

from typing import Any

DEVELOPERS = "Developers"
TECH_LEADS = "Tech leads"
AUDITORS = "Auditors"

# "app_label.codename"; permissions that do not exist (yet) are skipped.
ROLE_PERMISSIONS: dict[str, list[str]] = {
    DEVELOPERS: [
        "dashboard.request_migration",
        "api.add_apitoken",
        "api.view_apitoken",
        "api.change_apitoken",
        "environments.view_environment",
        "approvals.view_migrationrequest",
        "approvals.view_run",
    ],
    TECH_LEADS: [
        "dashboard.request_migration",
        "api.add_apitoken",
        "api.view_apitoken",
        "api.change_apitoken",
        "dashboard.approve_migration",
        "environments.view_environment",
        "approvals.view_migrationrequest",
        "approvals.view_run",
        "approvals.view_approval",
    ],
    AUDITORS: [
        "dashboard.view_auditlog",
        "dashboard.export_auditlog",
        "environments.view_environment",
        "approvals.view_migrationrequest",
        "approvals.view_approval",
        "approvals.view_run",
        "audit.view_auditevent",
        "audit.view_chainverification",
    ],
}


def sync_role_permissions(group_model: Any, permission_model: Any) -> None:
    """Create the groups and add every existing permission of the map.

    Takes the models as arguments so the data migration can pass historical
    models.
    """
    for group_name, perms in ROLE_PERMISSIONS.items():
        group, _ = group_model.objects.get_or_create(name=group_name)
        for dotted in perms:
            app_label, codename = dotted.split(".", 1)
            permission = permission_model.objects.filter(
                content_type__app_label=app_label, codename=codename
            ).first()
            if permission is not None:
                group.permissions.add(permission)


def sync_role_permissions_after_migrate(sender: Any, **kwargs: Any) -> None:
    if getattr(sender, "label", None) != "dashboard":
        return
    # post_migrate of other apps may not have created their permissions yet
    # when ours runs; create them all first (idempotent).
    from django.apps import apps
    from django.contrib.auth.management import create_permissions
    from django.contrib.auth.models import Group, Permission

    from dashboard.audit.access_signals import suppressed

    for app_config in apps.get_app_configs():
        create_permissions(app_config, verbosity=0, using=kwargs.get("using", "default"))
    with suppressed():  # the product's own role definitions, not a person's decision
        sync_role_permissions(Group, Permission)
