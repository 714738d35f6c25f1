"""Prepare the embedded demo: migrate, demo accounts, environments. Safe to run twice."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.db import transaction

from dashboard.roles import AUDITORS, DEVELOPERS, TECH_LEADS

DEMO_PASSWORD = "demo"  # noqa: S105 - the demo's documented password

# username -> (groups, superuser, what the account is for)
DEMO_ACCOUNTS: dict[str, tuple[list[str], bool, str]] = {
    "developer": ([DEVELOPERS], False, "inspects the graph, requests upgrades and downgrades"),
    "lead": ([TECH_LEADS], False, "approves or rejects requests, watches runs"),
    "lead2": ([TECH_LEADS], False, "second approver for production"),
    "auditor": ([AUDITORS], False, "reads, verifies and exports the audit log"),
    "admin": ([], True, "superuser: edits environments and users in the admin"),
}


class Command(BaseCommand):
    help = "Migrate the dashboard database and create the demo accounts and environments."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--environments", default="environments.toml", help="TOML file of environments"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        call_command("migrate", interactive=False, verbosity=0)
        with transaction.atomic():
            self._accounts()
        self._environments(options["environments"])
        self.stdout.write(self.style.SUCCESS("Demo ready."))

    def _accounts(self) -> None:
        user_model = get_user_model()
        for username, (groups, superuser, _purpose) in DEMO_ACCOUNTS.items():
            user, created = user_model.objects.get_or_create(
                username=username, defaults={"email": f"{username}@example.com"}
            )
            user.is_staff = True
            user.is_superuser = superuser
            if created:
                user.set_password(DEMO_PASSWORD)
            user.save()
            user.groups.set(Group.objects.filter(name__in=groups))
            if created:
                self.stdout.write(f"created account {username}")

    def _environments(self, path: str) -> None:
        from pathlib import Path

        from django.core.management import get_commands

        if "load_environments" in get_commands() and Path(path).exists():
            call_command("load_environments", path, stdout=self.stdout)
            call_command("demo_targets", stdout=self.stdout)
