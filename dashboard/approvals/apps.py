from django.apps import AppConfig


class ApprovalsConfig(AppConfig):
    name = "dashboard.approvals"
    label = "approvals"
    verbose_name = "Requests and runs"

    def ready(self) -> None:
        from dashboard.approvals import receivers  # noqa: F401 -- connects the signal receivers
