"""Reads of requests and runs that need care (joins, who may decide, counts), and what the
request pages say about them (staleness, risk, the run in words, the form's plan).

For other apps: ``environment_request_history(environment=...)`` lists an
environment's requests (newest first) for its page; the "request a
migration" link is ``reverse("approvals:create") + "?environment=<slug>&target=<rev>"``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count, Func, IntegerField, Q, QuerySet
from django.utils import timezone

from dashboard.approvals.models import Approval, MigrationRequest, Run, RunLogLine
from dashboard.approvals.planning import PinnedPlan
from dashboard.approvals.services.decisions import request_staleness
from dashboard.environments.models import Environment
from dashboard.environments.risk_summary import PlanRiskSummary, plan_risk_summary
from dashboard.environments.services import environment_plan, environment_plan_summary

Status = MigrationRequest.Status


class _JSONLength(Func):
    """Length of a JSON array column (PostgreSQL ``jsonb``, SQLite ``json``)."""

    function = "jsonb_array_length"
    output_field = IntegerField()

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        return self.as_sql(compiler, connection, function="json_array_length", **extra)


# The pinned SQL and per-step SQL can be large: lists never need them.
_HEAVY_FIELDS = ("sql", "steps", "findings", "drift")


def _base() -> QuerySet[MigrationRequest]:
    return MigrationRequest.objects.select_related("environment", "requested_by", "run")


def _listing() -> QuerySet[MigrationRequest]:
    """Rows for lists: no pinned plan, but the number of its steps."""
    return _base().defer(*_HEAVY_FIELDS).annotate(step_count=_JSONLength("steps"))


def environment_request_history(
    *, environment: Environment, limit: int = 20
) -> list[MigrationRequest]:
    """The latest requests of ``environment`` with their run, newest first."""
    return list(_listing().filter(environment=environment)[:limit])


def requests_of_user(*, user: Any) -> QuerySet[MigrationRequest]:
    """The user's requests; a fleet's per-target requests are listed on its rollout page."""
    return _listing().filter(requested_by=user, parent__isnull=True)


def requests_waiting_for(*, user: Any) -> list[MigrationRequest]:
    """Pending requests ``user`` may still decide on (policy of ``approver_refusal``)."""
    if not user.has_perm("dashboard.approve_migration"):
        return []
    # The same rules as ``approver_refusal``, in one query instead of two per request.
    pending = _listing().filter(status=Status.PENDING).exclude(requested_by=user)
    pending = pending.exclude(approvals__approver=user, approvals__expired_at__isnull=True)
    pending = pending.filter(
        Q(environment__approver_group__isnull=True)
        | Q(environment__approver_group__in=user.groups.all())
    )
    return list(pending.distinct())


def request_detail(*, pk: int) -> MigrationRequest:
    """The request with its environment, run and (a fleet's request) its rollout: one query."""
    return _base().select_related("environment__approver_group", "rollout").get(pk=pk)


def request_decisions(*, request: MigrationRequest) -> list[Approval]:
    return list(request.approvals.select_related("approver").order_by("created_at", "id"))


def request_possible_approvers(*, request: MigrationRequest) -> list[str]:
    """Usernames who could still approve (for "who may still approve")."""
    from django.contrib.auth import get_user_model

    users = get_user_model().objects.filter(is_active=True).exclude(pk=request.requested_by_id)
    if request.environment.approver_group_id:
        users = users.filter(groups=request.environment.approver_group_id)
    decided = request.approvals.filter(expired_at__isnull=True).values("approver_id")
    can_approve = (
        Q(is_superuser=True)
        | Q(
            groups__permissions__codename="approve_migration",
            groups__permissions__content_type__app_label="dashboard",
        )
        | Q(
            user_permissions__codename="approve_migration",
            user_permissions__content_type__app_label="dashboard",
        )
    )
    return list(
        users.exclude(pk__in=decided)
        .filter(can_approve)
        .order_by("username")
        .values_list("username", flat=True)
        .distinct()
    )


def run_log_tail(*, run: Run, limit: int = 200) -> list[RunLogLine]:
    lines = list(run.log_lines.order_by("-id")[:limit])
    lines.reverse()
    return lines


def request_counts() -> dict[str, int]:
    """Counts for the admin index: waiting, queued, running."""
    # A fleet's request counts once, not once per target.
    counts = MigrationRequest.objects.filter(parent__isnull=True).aggregate(
        pending=Count("pk", filter=Q(status=Status.PENDING)),
        approved=Count("pk", filter=Q(status=Status.APPROVED)),
        running=Count("pk", filter=Q(status=Status.RUNNING)),
    )
    return {key: value or 0 for key, value in counts.items()}


# --- the request page ---------------------------------------------------------------

PHASE_WORDS = {"claimed": "starting", "done": "finished"}


def heads_text(heads: Sequence[str] | None) -> str:
    return ", ".join(sorted(heads or ())) or "base"


def request_stale_reason(*, request: MigrationRequest) -> str | None:
    """Why ``request`` is stale, in words ("the environment moved from X to Y ..."), or None.

    A request already moved to *stale* keeps its reason in ``status_note``; a
    pending one is judged from its environment's cached status
    (:func:`~dashboard.approvals.services.decisions.request_staleness`).
    """
    if request.status == Status.STALE:
        return request.status_note or "the environment moved after this was requested"
    if request.status == Status.PENDING:
        return request_staleness(request)
    return None


def pinned_risk_summary(
    *, findings: Sequence[Mapping[str, Any]], revisions: int, environment: Environment, sql: str
) -> PlanRiskSummary:
    """The one-glance risk of a pinned plan; "squawk could not run" said once, in plain words.

    Every revision pins why squawk could not lint it (``lint_unavailable``);
    the page says it once above the revisions, and each revision keeps its
    *lint unavailable* badge.
    """
    reasons = {
        str(item["lint_unavailable"]): None for item in findings if item.get("lint_unavailable")
    }
    summary = plan_risk_summary(
        findings=list(findings), revision_count=revisions, environment=environment, sql=sql
    )
    if reasons:
        summary.notes.append(
            f"Not linted: squawk could not check this plan ({'; '.join(reasons)}). Until it is"
            " linted the plan counts as destructive: approvers confirm they read the SQL."
        )
    return summary


def care_reasons(*, direction: str, destructive: bool, summary: PlanRiskSummary) -> list[str]:
    """Why approvers must tick "I have read the SQL" (empty when they need not)."""
    reasons = ["a downgrade"] if direction == MigrationRequest.Direction.DOWNGRADE else []
    if summary.destructive:
        reasons.append("destructive")
    if destructive and not summary.destructive:
        reasons.append("not linted" if summary.notes else "destructive")
    return reasons


def request_risk(*, request: MigrationRequest) -> PlanRiskSummary:
    return pinned_risk_summary(
        findings=request.findings,
        revisions=len(request.steps),
        environment=request.environment,
        sql=request.sql,
    )


@dataclass(frozen=True)
class TimelineRow:
    """One applied revision of a run: when it started and how long it took (database clock)."""

    index: int
    revision: str
    message: str
    started_at: datetime | None
    applied_at: datetime
    run_started_at: datetime

    @property
    def seconds(self) -> float | None:
        if self.started_at is None:
            return None
        return max((self.applied_at - self.started_at).total_seconds(), 0.0)

    @property
    def duration(self) -> str:
        return duration_text(self.seconds)

    @property
    def offset(self) -> str:
        """When it started, counted from the run's start ("+1.2 s")."""
        start = self.started_at or self.applied_at
        return "+" + duration_text(max((start - self.run_started_at).total_seconds(), 0.0))


def duration_text(seconds: float | None) -> str:
    """``0.04 s``, ``3.2 s``, ``2 min 05 s``; ``—`` when unknown."""
    if seconds is None:
        return "—"
    if seconds < 1:
        return f"{seconds:.2f} s"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest:02d} s"


@dataclass(frozen=True)
class RunView:
    """What the live run view and the record after it say (see ``run_view``)."""

    run: Run
    phase: str
    current_index: int | None  # 1-based position of the revision running now
    current_revision: str
    current_message: str
    timeline: list[TimelineRow]
    record: str

    @property
    def elapsed(self) -> str:
        return duration_text(self.run.elapsed_seconds)


def run_view(*, request: MigrationRequest, run: Run) -> RunView:
    """The run of ``request`` in words: "revision k of n: <id> <message>", the phase, a timeline.

    The record says where the run left the database ("Upgraded production
    from a to c.") from its final heads, never from ``committed``.
    """
    messages = {step["revision"]: step.get("message", "") for step in request.steps}
    current = run.current_revision if run.is_running else ""
    index = request.revisions.index(current) + 1 if current in messages else None
    timeline = [
        TimelineRow(
            index=p.index,
            revision=p.revision,
            message=messages.get(p.revision, ""),
            started_at=p.started_at,
            applied_at=p.applied_at,
            run_started_at=run.started_at,
        )
        for p in run.progress.order_by("index")
    ]
    return RunView(
        run=run,
        phase=PHASE_WORDS.get(run.phase, run.phase),
        current_index=index,
        current_revision=current,
        current_message=messages.get(current, ""),
        timeline=timeline,
        record=run_record(request=request, run=run),
    )


def run_record(*, request: MigrationRequest, run: Run) -> str:
    """Where the run left the database, from its final heads ('' while they are not known)."""
    if run.final_heads is None:
        return ""
    before, after = heads_text(request.from_heads), heads_text(run.final_heads)
    environment = request.environment.name
    if sorted(run.final_heads) == sorted(request.from_heads):
        return f"Nothing changed: {environment} is still at {before}."
    verb = "Downgraded" if request.direction == MigrationRequest.Direction.DOWNGRADE else "Upgraded"
    record = f"{verb} {environment} from {before} to {after}."
    if sorted(run.final_heads) != sorted(request.to_heads):
        record += f" The plan's target, {heads_text(request.to_heads)}, was not reached."
    return record


# --- the request form's plan --------------------------------------------------------


@dataclass(frozen=True)
class PreviewStep:
    revision: str
    message: str
    sql: str


@dataclass
class PlanPreview:
    """The plan the request form shows: from the cached status (GET) or read live (Preview)."""

    environment: Environment
    direction: str
    target: str
    live: bool
    dialect: str = ""
    from_heads: list[str] = field(default_factory=list)
    to_heads: list[str] = field(default_factory=list)
    steps: list[PreviewStep] = field(default_factory=list)
    risk: PlanRiskSummary | None = None
    care: list[str] = field(default_factory=list)
    error: str = ""

    @property
    def sql(self) -> str:
        return "".join(step.sql for step in self.steps)

    @property
    def status_age(self) -> str:
        """How old the cached status is: "less than a minute", "3 min", "2 h", "4 d" ('' if never read)."""
        read_at = self.environment.status_refreshed_at
        return age_text(timezone.now() - read_at) if read_at else ""


def age_text(age: timedelta) -> str:
    seconds = max(age.total_seconds(), 0)
    if seconds < 60:
        return "less than a minute"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{int(seconds // size)} {unit}"
    return ""  # unreachable


def request_plan_cached(*, environment: Environment, direction: str, target: str) -> PlanPreview:
    """The plan from the environment's cached status: no connection to its database."""
    cached = environment_plan(environment=environment, target=target, direction=direction)  # type: ignore[arg-type]
    preview = PlanPreview(environment=environment, direction=direction, target=target, live=False)
    if cached.error or cached.plan is None:
        preview.error = cached.error or "no plan"
        return preview
    preview.dialect = cached.dialect
    preview.from_heads = list(cached.plan.from_heads)
    preview.to_heads = sorted(cached.plan.to_heads)
    preview.steps = [PreviewStep(r.revision, r.message, r.sql) for r in cached.revisions]
    preview.risk = environment_plan_summary(environment=environment, preview=cached)
    needs_care = any(r.risk is not None and r.risk.needs_care for r in cached.revisions)
    preview.care = care_reasons(direction=direction, destructive=needs_care, summary=preview.risk)
    return preview


def request_plan_pinned(*, environment: Environment, plan: PinnedPlan) -> PlanPreview:
    """A plan just read live (``migration_request_preview``), as the request would pin it."""
    risk = pinned_risk_summary(
        findings=plan.findings, revisions=len(plan.steps), environment=environment, sql=plan.sql
    )
    return PlanPreview(
        environment=environment,
        direction=plan.direction,
        target=plan.target,
        live=True,
        dialect=plan.dialect,
        from_heads=list(plan.from_heads),
        to_heads=list(plan.to_heads),
        steps=[
            PreviewStep(s["revision"], s.get("message", ""), s.get("sql", "")) for s in plan.steps
        ],
        risk=risk,
        care=care_reasons(direction=plan.direction, destructive=plan.destructive, summary=risk),
    )
