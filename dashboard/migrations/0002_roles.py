"""Create the groups Developers, Tech leads and Auditors with the custom permissions.

Model permissions of the domain apps are added by ``dashboard.roles`` after
every ``migrate`` (they only exist once those apps are migrated).
"""

from django.apps.registry import Apps
from django.db import migrations
from django.db.backends.base.schema import BaseDatabaseSchemaEditor


def create_roles(apps: Apps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    from django.contrib.auth.management import create_permissions

    from dashboard.roles import sync_role_permissions

    # Permissions are normally created after all migrations (post_migrate);
    # create the core app's now so the groups can hold them.
    app_config = apps.get_app_config("dashboard")
    app_config.models_module = True  # historical app configs lack it
    create_permissions(app_config, verbosity=0, apps=apps)
    app_config.models_module = None
    sync_role_permissions(apps.get_model("auth", "Group"), apps.get_model("auth", "Permission"))


def remove_roles(apps: Apps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    from dashboard.roles import ROLE_PERMISSIONS

    apps.get_model("auth", "Group").objects.filter(name__in=list(ROLE_PERMISSIONS)).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("dashboard", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_roles, remove_roles)]
