from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "dashboard.audit"
    label = "audit"
    verbose_name = "Audit trail"

    def ready(self) -> None:
        # Connects the auth signals (login, failed login, logout) to the audit log.
        from dashboard.audit import access_signals, signals  # noqa: F401
