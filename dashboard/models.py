"""The core app's models: only the holder of the product's custom permissions.

The dashboard's tables live in its domain apps (environments, audit,
approvals); this model has no table and exists so that the permissions below
have a stable home (``dashboard.request_migration`` and so on).
"""

from django.db import models


class DashboardPermission(models.Model):
    class Meta:
        managed = False
        default_permissions = ()
        permissions = [
            ("request_migration", "Can request a migration"),
            ("approve_migration", "Can approve a migration"),
            ("view_auditlog", "Can view the audit log"),
            ("export_auditlog", "Can export the audit log"),
        ]

    def __str__(self) -> str:
        return "dashboard permissions"
