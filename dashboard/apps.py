from django.apps import AppConfig


class DashboardConfig(AppConfig):
    name = "dashboard"
    label = "dashboard"
    verbose_name = "Migrations dashboard"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from dashboard.roles import sync_role_permissions_after_migrate

        post_migrate.connect(sync_role_permissions_after_migrate, dispatch_uid="dashboard.roles")

        from axes.signals import user_locked_out
        from django.contrib.auth.signals import user_logged_in

        from dashboard.security import on_user_locked_out, on_user_logged_in

        user_logged_in.connect(on_user_logged_in, dispatch_uid="dashboard.security.login")
        user_locked_out.connect(on_user_locked_out, dispatch_uid="dashboard.security.locked_out")
        # Make sure the filesystem broker's folders exist before anyone publishes.
        from django.conf import settings

        options = getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", {})
        for key in ("data_folder_in", "data_folder_out", "processed_folder", "control_folder"):
            if key in options:
                from pathlib import Path

                Path(str(options[key])).mkdir(parents=True, exist_ok=True)
