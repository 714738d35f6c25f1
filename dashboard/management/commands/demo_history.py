"""``manage.py demo_history``: give the demo a past, built through the real services.

The story (every step goes through the services a person or a worker would
use, so pinned plans, approvals, runs, progress rows and audit events are all
genuine; runs execute in this process by calling the execution service the
worker calls, so no worker is needed during set-up):

1. dev: ``developer`` requests ``heads`` (no approval needed), the run
   succeeds, dev is at head.
2. staging: ``developer`` requests an upgrade by a few revisions (through the
   merge of the marketplace branch), ``lead`` approves, the run succeeds.
   Then ``developer`` requests ``heads``, ``lead`` approves, and before the
   run someone applies one revision by hand with plain Alembic: the run
   refuses with "stale plan". The hand-applied revision is rolled back by
   hand, so staging stays a few revisions behind.
3. production: ``developer`` requests ``heads``; the request waits for two
   tech leads, and its plan contains the destructive drop-column revision.
4. tenants (a fleet of twelve SQLite tenants, placed by ``demo_targets``):
   ``developer`` requests ``heads`` (two pinned plans: most tenants three
   revisions behind, a few one behind), ``lead`` and ``lead2`` approve, and
   the rollout runs here, wave by wave, through the scheduler's own step
   (``rollout_advance``) and each target's run as above: the canary and the
   first target of wave 2 succeed, ``initech`` fails (its ``audit_logs``
   table exists already: ``demo_targets`` made it by hand) and the rollout
   halts in wave 2; waves 3 and 4 are untouched. ``demo_targets
   --fix-tenant`` drops the table; *Resume* on the rollout page (the demo's
   workers) finishes the rollout.
5. The audit chain is verified once (a genuine ``dashboard.audit.verified``
   event), so the audit page shows "intact".

Notification mails of the history are not sent (the console backend would
bury the welcome text) and Alembic's INFO lines are muted while it runs.

Contract: runs once. When any request of dev, staging or production exists
the pipeline's story is left as is, and when the fleet has a request its
rollout is (``make demo-setup`` twice is safe; an older demo gains the fleet).
A fleet whose URL variable is not set is skipped, like any environment
without a URL. ``targets_preposition`` must run
before ``demo_targets`` on fresh targets, so dev and staging start further
behind than ``demo_targets`` would leave them and the history moves them
to where ``demo_targets`` wants them.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from typing import Any

from alembic import command
from alembic.config import Config
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.test.utils import override_settings
from sqlalchemy import create_engine, inspect
from sqlalchemy.pool import NullPool

from dashboard.approvals.models import MigrationRequest, Run
from dashboard.approvals.services.decisions import migration_request_approve
from dashboard.approvals.services.execution import RetryLater, run_execute, run_start
from dashboard.approvals.services.requests import RequestRefused, migration_request_create
from dashboard.audit.services import audit_chain_verify
from dashboard.environments.management.commands.demo_targets import FIX_COMMAND, FLEET
from dashboard.environments.models import Environment, EnvironmentConfigError
from dashboard.environments.services import alembic_script, environments_refresh_all
from dashboard.migrator.plan import compute_plan
from dashboard.rollouts.models import Rollout, RolloutTarget
from dashboard.rollouts.services.scheduler import rollout_advance

# How far behind head fresh targets start, before the history moves them.
FRESH_BEHIND = {"dev": 3, "staging": 6}
# Where staging's first (successful) request takes it: as far behind as demo_targets wants.
STAGING_BEHIND_AFTER = 3
WAIT_FOR_WORKER_SECONDS = 60
PEOPLE = ("developer", "lead", "lead2")
PIPELINE = ("dev", "staging", "production")
# A fleet request pins plans from the targets' cached heads: every target read.
FLEET_READ_STATES = ("up_to_date", "pending")
ROLLOUT_STEPS = 20  # scheduler steps while building the history (4 waves need far fewer)


def revision_order() -> list[str]:
    """Every revision of the Alembic project, base first, in upgrade order."""
    plan = compute_plan(alembic_script(), current_heads=(), target="heads", direction="upgrade")
    return list(plan.revisions)


def revision_behind(order: list[str], behind: int) -> str:
    return "heads" if behind <= 0 else order[max(0, len(order) - 1 - behind)]


def alembic_by_hand(url: str, *, upgrade: str | None = None, downgrade: str | None = None) -> None:
    """What someone does with the plain Alembic command, outside the dashboard (not audited)."""
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.begin() as connection:
            config = Config(settings.ALEMBIC_CONFIG)
            config.attributes["connection"] = connection
            if upgrade:
                command.upgrade(config, upgrade)
            if downgrade:
                command.downgrade(config, downgrade)
    finally:
        engine.dispose()


def _has_version_table(url: str, table: str) -> bool:
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            return inspect(connection).has_table(table)
    finally:
        engine.dispose()


def pipeline_history_exists() -> bool:
    """Whether the story of dev, staging and production was told (any of their requests)."""
    return MigrationRequest.objects.filter(environment__slug__in=PIPELINE).exists()


def targets_preposition(*, write: Any) -> None:
    """Put fresh (never migrated) dev and staging targets further behind than their demo place.

    Does nothing once dev, staging or production has a request, or for a target that has a
    version table.
    """
    if pipeline_history_exists():
        return
    order = revision_order()
    for env in Environment.objects.filter(slug__in=list(FRESH_BEHIND)):
        try:
            url = env.database_url()
        except EnvironmentConfigError:
            continue
        if _has_version_table(url, env.version_table):
            continue
        target = revision_behind(order, FRESH_BEHIND[env.slug])
        alembic_by_hand(url, upgrade=target)
        write(f"{env.slug}: starts at {target[:12]}, {FRESH_BEHIND[env.slug]} behind head")


class Command(BaseCommand):
    help = "Build the demo's history (requests, approvals, runs, audit) through the real services."

    def handle(self, *args: Any, **options: Any) -> None:
        people = {u.username: u for u in get_user_model().objects.filter(username__in=PEOPLE)}
        if set(people) != set(PEOPLE):
            self.stdout.write("demo history: skipped, the demo accounts are missing")
            return
        with _quiet():
            built = [self._pipeline(people), self._fleet(people)]
            if any(built):
                environments_refresh_all(environments=Environment.objects.readable())
        if any(built):
            check = audit_chain_verify().message
            self.stdout.write(
                self.style.SUCCESS(f"demo history: ready; audit log verified ({check})")
            )

    def _pipeline(self, people: dict[str, Any]) -> bool:
        """dev, staging and production's story; True if it was told now."""
        if pipeline_history_exists():
            self.stdout.write("demo history: already there, left as is")
            return False
        envs = {env.slug: env for env in Environment.objects.filter(slug__in=PIPELINE)}
        missing = [slug for slug in PIPELINE if slug not in envs]
        if missing:
            self.stdout.write(f"demo history: skipped, no environment {', '.join(missing)}")
            return False
        try:
            urls = {slug: env.database_url() for slug, env in envs.items()}
        except EnvironmentConfigError as exc:
            self.stdout.write(f"demo history: skipped ({exc})")
            return False
        story = _Story(people=people, envs=envs, urls=urls, write=self.stdout.write)
        try:
            story.dev()
            story.staging()
            story.production()
        except RequestRefused as exc:
            self.stdout.write(f"demo history: stopped early: {exc}")
        return True

    def _fleet(self, people: dict[str, Any]) -> bool:
        """The tenants fleet's halted rollout; True if it was built now."""
        fleet = Environment.objects.filter(slug=FLEET, is_fleet=True).first()
        if fleet is None:
            return False
        if MigrationRequest.objects.filter(environment=fleet).exists():
            self.stdout.write(f"demo fleet: {fleet.slug} has its rollout already, left as is")
            return False
        targets = list(Environment.objects.targets_of(fleet))
        try:
            for env in targets:
                env.database_url()
        except EnvironmentConfigError as exc:
            self.stdout.write(f"demo fleet: skipped ({exc})")
            return False
        if any(env.status_state not in FLEET_READ_STATES for env in targets):
            self.stdout.write(f"demo fleet: skipped, not every target of {fleet.slug} was read")
            return False
        story = _Story(people=people, envs={FLEET: fleet}, urls={}, write=self.stdout.write)
        try:
            story.fleet()
        except RequestRefused as exc:
            self.stdout.write(f"demo fleet: stopped early: {exc}")
        return True


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """No notification mails and no Alembic/kombu INFO lines while the history is built."""
    loggers = [
        logging.getLogger(name) for name in ("alembic", "alembic.runtime.migration", "kombu")
    ]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        # override_settings is Django's documented way to swap a setting for a block.
        with override_settings(EMAIL_BACKEND="django.core.mail.backends.dummy.EmailBackend"):
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


class _Story:
    def __init__(
        self,
        *,
        people: dict[str, Any],
        envs: dict[str, Environment],
        urls: dict[str, str],
        write: Any,
    ) -> None:
        self.people, self.envs, self.urls, self.write = people, envs, urls, write
        self.order = revision_order()

    def _request(self, slug: str, target: str, reason: str) -> MigrationRequest:
        request = migration_request_create(
            environment=self.envs[slug],
            actor=self.people["developer"],
            direction=MigrationRequest.Direction.UPGRADE,
            target=target,
            reason=reason,
        )
        plan = f"{len(request.steps)} revision(s)"
        self.write(f"{slug}: request #{request.pk} to {target[:12]} ({plan}) by developer")
        return request

    def _approve(self, request: MigrationRequest, approver: str, comment: str) -> None:
        migration_request_approve(
            request=request,
            actor=self.people[approver],
            sql_acknowledged=True,
            comment=comment,
        )
        self.write(f"{request.environment.slug}: request #{request.pk} approved by {approver}")

    def _run(self, request: MigrationRequest) -> Run | None:
        """Run it here as the worker would; if a running worker claimed it first, wait for it."""
        run = run_start(request_id=request.pk)
        if run is None:
            deadline = time.monotonic() + WAIT_FOR_WORKER_SECONDS
            while time.monotonic() < deadline:
                request.refresh_from_db()
                if request.status in MigrationRequest.ENDED_STATUSES:
                    break
                time.sleep(0.5)
            return Run.objects.filter(request=request).first()
        for attempt in range(settings.DASHBOARD_RUN_LOCK_RETRIES + 1):
            try:
                run = run_execute(run_id=run.pk, attempt=attempt)
                break
            except RetryLater as retry:
                time.sleep(min(retry.countdown, 5))
        self.write(
            f"{request.environment.slug}: run of request #{request.pk} {run.outcome}"
            + (f": {run.error}" if run.error else "")
        )
        return run

    def dev(self) -> None:
        request = self._request(
            "dev", "heads", "Bring dev up to date with main after the release branch merge."
        )
        self._run(request)

    def staging(self) -> None:
        target = revision_behind(self.order, STAGING_BEHIND_AFTER)
        first = self._request(
            "staging",
            target,
            "Release 2024.10 candidate: merge the marketplace branch into staging.",
        )
        self._approve(first, "lead", "Checked the plan and the SQL; go.")
        self._run(first)
        second = self._request(
            "staging", "heads", "Audit logs and the pages clean-up for the next release."
        )
        self._approve(second, "lead", "Destructive drop of pages.legacy_html is expected.")
        # Someone applies a hotfix by hand with plain Alembic between approval and run.
        url = self.urls["staging"]
        alembic_by_hand(url, upgrade="+1")
        self.write(
            "staging: one revision applied by hand with plain Alembic (outside the dashboard)"
        )
        self._run(second)
        alembic_by_hand(url, downgrade="-1")
        self.write("staging: the hand-applied revision rolled back by hand")

    def production(self) -> None:
        self._request("production", "heads", "Ship the marketplace and the audit log to customers.")

    def fleet(self) -> None:
        request = self._request(
            FLEET, "heads", "Audit log and the pages clean-up for every tenant, canary first."
        )
        self._approve(request, "lead", "Two plans, both read; canary first.")
        self._approve(request, "lead2", "Fine by me; the waves stop at the first failure.")
        rollout = Rollout.objects.get(request=request)
        for _ in range(ROLLOUT_STEPS):
            state = rollout_advance(rollout_id=rollout.pk)
            queued = list(
                RolloutTarget.objects.filter(rollout=rollout, state=RolloutTarget.State.QUEUED)
                .exclude(request__isnull=True)
                .select_related("request__environment")
                .order_by("position")
            )
            if state != Rollout.State.RUNNING or not queued:
                break
            for row in queued:
                assert row.request is not None
                self._run(row.request)
        rollout.refresh_from_db()
        self.write(
            f"{FLEET}: rollout of request #{request.pk} {rollout.get_state_display().lower()}"
            + (f": {rollout.halted_reason}" if rollout.halted_reason else "")
        )
        if rollout.state == Rollout.State.HALTED:
            self.write(f"{FLEET}: the fix: {FIX_COMMAND}, then Resume on the rollout page")
