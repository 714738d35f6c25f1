"""Prepare the embedded demo: migrate, demo accounts, environments, history. Safe to run twice.

Ends by printing the URL and the accounts (``make demo`` runs this before it
starts the web server, the worker and beat).
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.db import transaction
from django.urls import reverse

from dashboard.roles import AUDITORS, DEVELOPERS, TECH_LEADS

DEMO_PASSWORD = "demo"  # noqa: S105 - the demo's documented password

# username -> (groups, superuser, what the account is for)
DEMO_ACCOUNTS: dict[str, tuple[list[str], bool, str]] = {
    "developer": ([DEVELOPERS], False, "inspects the graph, requests upgrades and downgrades"),
    "lead": ([TECH_LEADS], False, "developer's rights + approves or rejects, watches runs"),
    "lead2": ([TECH_LEADS], False, "the second tech lead production needs"),
    "auditor": ([AUDITORS], False, "reads, verifies and exports the audit log"),
    "admin": ([], True, "superuser: edits environments and users in the admin"),
}


class Command(BaseCommand):
    help = "Migrate, create the demo accounts, environments and history; print URL and accounts."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--environments", default="environments.toml", help="TOML file of environments"
        )
        parser.add_argument(
            "--url", default="http://127.0.0.1:8000/", help="where the demo is served (printed)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        call_command("migrate", interactive=False, verbosity=0)
        with transaction.atomic():
            self._accounts()
        self._environments(options["environments"])
        self._welcome(options["url"])

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
            from dashboard.management.commands.demo_history import targets_preposition

            targets_preposition(write=self.stdout.write)
            call_command("demo_targets", stdout=self.stdout)
            call_command("demo_history", stdout=self.stdout)

    def _welcome(self, url: str) -> None:
        """The URL and a table of accounts: username, password, what each can do."""
        width = max(len(name) for name in DEMO_ACCOUNTS)
        lines = [
            "",
            self.style.SUCCESS(f"Demo ready: open {url}"),
            "",
            f"  {'username':<{width}}  password  what it can do",
            f"  {'-' * width}  --------  {'-' * 50}",
        ]
        for username, (_groups, _superuser, purpose) in DEMO_ACCOUNTS.items():
            lines.append(f"  {username:<{width}}  {DEMO_PASSWORD:<8}  {purpose}")
        lines += [
            "",
            "  Start with the tour in docs/tour.md: log in as developer, then lead and lead2,",
            "  then auditor. Production has a request waiting for two approvals.",
            *self._fleet_lines(url),
            "",
        ]
        self.stdout.write("\n".join(lines))

    def _fleet_lines(self, url: str) -> list[str]:
        """Where the demo fleet's halted rollout is, and the fix, while it is halted."""
        from dashboard.environments.management.commands.demo_targets import (
            CONFLICT_TENANT,
            FIX_COMMAND,
            FLEET,
        )
        from dashboard.rollouts.models import Rollout

        halted = (
            Rollout.objects.filter(request__environment__slug=FLEET, state=Rollout.State.HALTED)
            .values_list("request_id", "current_wave")
            .first()
        )
        if halted is None:
            return []
        request_id, wave = halted
        page = url.rstrip("/") + reverse("rollouts:rollout", args=[request_id])
        return [
            f"  The {FLEET} fleet's rollout halted in wave {wave} on {CONFLICT_TENANT}: {page}",
            f'  The fix: `{FIX_COMMAND}`, then Resume on that page as lead (README, "Fleets").',
        ]
