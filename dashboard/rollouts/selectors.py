"""What the rollout page, the fleet's request page and the request form read and say.

``rollout_live(rollout=...)`` is the polled view of a rollout: every target
with its state, progress and elapsed time, per wave, in a constant number of
queries (one for the targets, their current child request and its run,
joined), whatever the number of targets. A target's state is read *live*
from its child run when that moved since the scheduler's last step (the
scheduler copies it on its next step; the page need not wait for it).

``fleet_review(rollout=...)`` is what approvers read: the pinned plans (from
→ to heads, how many targets follow each, steps with SQL and findings) and
the waves with their targets. ``fleet_plan_preview(...)`` is the request
form's version of it before anything is pinned, from the targets' cached
statuses, grouped exactly as ``fleet_request_create`` will group them.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from django.db.models import Count
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

from dashboard.approvals.models import MigrationRequest, Run
from dashboard.approvals.selectors import age_text, duration_text, heads_text, pinned_risk_summary
from dashboard.environments.fleet import heads_key, wave_ends
from dashboard.environments.models import Environment
from dashboard.environments.risk_summary import PlanRiskSummary
from dashboard.environments.services import environment_plan, environment_plan_summary
from dashboard.rollouts.models import Rollout, RolloutPlan, RolloutTarget
from dashboard.rollouts.services.pinning import READ_STATES

Target = RolloutTarget.State

# Words and tone (the CSS classes of ``dash-badge``) of each rollout state and
# target state; ``gate_failed`` is a target that migrated but whose gate was not true.
ROLLOUT_STYLES: dict[str, tuple[str, str]] = {
    "pending": ("Waiting for approval", "warn"),
    "running": ("Running", "info"),
    "soaking": ("Soaking", "info"),
    "halted": ("Halted", "danger"),
    "succeeded": ("Succeeded", "ok"),
    "cancelled": ("Cancelled", "muted"),
}
TARGET_STYLES: dict[str, tuple[str, str]] = {
    "pending": ("Pending", ""),
    "queued": ("Queued", "info"),
    "running": ("Running", "info"),
    "succeeded": ("Succeeded", "ok"),
    "failed": ("Failed", "danger"),
    "gate_failed": ("Gate failed", "danger"),
    "interrupted": ("Interrupted", "danger"),
    "unknown": ("Outcome unknown", "warn"),
    "skipped": ("Skipped", "muted"),
}
# The order counts are listed in: what needs someone first.
COUNT_ORDER = (
    "failed",
    "gate_failed",
    "interrupted",
    "unknown",
    "running",
    "queued",
    "succeeded",
    "skipped",
    "pending",
)
_DONE = {"succeeded", "failed", "gate_failed", "interrupted", "skipped"}
_ATTENTION = ("failed", "gate_failed", "interrupted", "unknown")
_RUN_STATE = {
    Run.Outcome.RUNNING: Target.RUNNING,
    Run.Outcome.SUCCEEDED: Target.SUCCEEDED,
    Run.Outcome.FAILED: Target.FAILED,
    Run.Outcome.INTERRUPTED: Target.INTERRUPTED,
    Run.Outcome.CANCELLED: Target.FAILED,
    Run.Outcome.UNKNOWN: Target.UNKNOWN,
}
# A wave with more targets than this shows them as a grid of squares (names on hover,
# the failing and running ones listed by name above); fewer show as named chips.
NAMED_CHIPS_UP_TO = 40
ATTENTION_ROWS = 50
_URL_ID = 2_147_483_647
_MOVING = (Rollout.State.RUNNING, Rollout.State.SOAKING, Rollout.State.HALTED)


def rollout_of_request(*, pk: int) -> Rollout:
    """The rollout of fleet request ``pk`` with its request and fleet (one query)."""
    return (
        Rollout.objects.select_related(
            "request__environment__approver_group", "request__requested_by"
        )
        .defer("request__sql", "request__steps", "request__findings", "request__drift")
        .get(request_id=pk)
    )


# --- the live rollout -------------------------------------------------------------------


@dataclass(frozen=True)
class TargetView:
    """One target as the page shows it (strings ready, so a 500-target page renders fast)."""

    name: str
    wave: int
    position: int
    state: str
    words: str
    tone: str
    attempts: int
    applied: int
    total_steps: int
    error: str
    elapsed: str
    request_url: str
    environment_slug: str

    @property
    def progress(self) -> str:
        """'revision 2 of 3' while it runs, '2 of 3 revisions' otherwise."""
        if self.state == Target.RUNNING:
            return f"revision {min(self.applied + 1, self.total_steps)} of {self.total_steps}"
        return (
            f"{self.applied} of {self.total_steps} revision{'s' if self.total_steps != 1 else ''}"
        )

    @property
    def title(self) -> str:
        parts = [f"{self.name}: {self.words.lower()}"]
        if self.state == Target.RUNNING:
            parts.append(self.progress)
        if self.elapsed != "—":
            parts.append(self.elapsed)
        return " · ".join(parts)


@dataclass
class WaveView:
    number: int
    first: int  # 1-based position of its first target in rollout order
    last: int
    targets: list[TargetView]
    counts: dict[str, int]
    is_current: bool
    is_canary: bool

    @property
    def size(self) -> int:
        return len(self.targets)

    @property
    def named(self) -> bool:
        return self.size <= NAMED_CHIPS_UP_TO

    @property
    def done(self) -> int:
        return sum(count for state, count in self.counts.items() if state in _DONE)

    @property
    def count_parts(self) -> list[tuple[str, int, str]]:
        return _count_parts(self.counts)

    @property
    def grid(self) -> SafeString:
        """The wave's targets as chips: a link to its run when it has one, its state in
        ``data-state``, its name (in a wave shown as squares: in the tooltip only).

        Built here rather than in a template loop: 500 chips cost a template
        several times what they cost ``format_html`` (every 2 s, while polled).
        """
        named = self.named
        chips = []
        for t in self.targets:
            label = t.name if named else ""
            if named and t.state == Target.RUNNING:
                label = format_html("{} <small>{}/{}</small>", t.name, t.applied, t.total_steps)
            aria = "" if named else t.title
            if t.request_url:
                chips.append(
                    format_html(
                        '<a class="rt" data-state="{}" href="{}" title="{}"{}>{}</a>',
                        t.state,
                        t.request_url,
                        t.title,
                        format_html(' aria-label="{}"', aria) if aria else "",
                        label,
                    )
                )
            else:
                chips.append(
                    format_html(
                        '<span class="rt" data-state="{}" title="{}"{}>{}</span>',
                        t.state,
                        t.title,
                        format_html(' aria-label="{}"', aria) if aria else "",
                        label,
                    )
                )
        return mark_safe("".join(chips))  # noqa: S308 - every part built by format_html

    @property
    def summary(self) -> str:
        """'done', 'ended with failures', 'in progress' or 'not started': the row at a glance."""
        if self.done == self.size:
            return "ended with failures" if any(self.counts.get(s) for s in _ATTENTION) else "done"
        if self.done or any(self.counts.get(s) for s in ("running", "queued", "unknown")):
            return "in progress"
        return "not started"


@dataclass
class RolloutLive:
    rollout: Rollout
    request: MigrationRequest
    state: str  # the rollout's state, or the request's end when it never started
    words: str
    tone: str
    waves: list[WaveView]
    counts: dict[str, int]
    attention: list[TargetView]
    in_flight: list[TargetView]
    elapsed: str
    soak_left: str = ""
    soak_seconds: int = 0
    approvals: int = 0

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def done(self) -> int:
        return sum(count for state, count in self.counts.items() if state in _DONE)

    @property
    def percent(self) -> int:
        return int(100 * self.done / self.total) if self.total else 100

    @property
    def succeeded(self) -> int:
        return self.counts.get("succeeded", 0)

    @property
    def failures(self) -> int:
        return sum(self.counts.get(state, 0) for state in _ATTENTION)

    @property
    def count_parts(self) -> list[tuple[str, int, str]]:
        return _count_parts(self.counts)

    @property
    def running(self) -> list[TargetView]:
        return [target for target in self.in_flight if target.state == Target.RUNNING]

    @property
    def queued(self) -> list[TargetView]:
        return [target for target in self.in_flight if target.state == Target.QUEUED]

    @property
    def attention_more(self) -> int:
        return max(self.failures - len(self.attention), 0)

    @property
    def ended(self) -> bool:
        """Nothing will move any more: polling stops (runs of a cancelled rollout finish first)."""
        if self.in_flight:
            return False
        if self.rollout.state in Rollout.ENDED_STATES:
            return True
        return self.rollout.state == Rollout.State.PENDING and not self.request.is_open

    @property
    def soak_text(self) -> str:
        soak = self.rollout.soak
        return duration_text(soak.total_seconds()) if soak else ""

    @property
    def compact(self) -> bool:
        """Some wave shows its targets as squares (the page then explains them)."""
        return any(not wave.named for wave in self.waves)

    @property
    def current_wave(self) -> WaveView | None:
        return next((wave for wave in self.waves if wave.is_current), None)


def _count_parts(counts: dict[str, int]) -> list[tuple[str, int, str]]:
    """(state, count, words) for the states that have targets, in ``COUNT_ORDER``."""
    return [
        (state, counts[state], TARGET_STYLES[state][0].lower())
        for state in COUNT_ORDER
        if counts.get(state)
    ]


class _Row(NamedTuple):
    """One target joined with its current child request's run (``None`` fields: no run yet)."""

    name: str
    position: int
    wave: int
    state: str
    attempts: int
    applied: int
    total_steps: int
    error: str
    gate_passed: bool | None
    started_at: datetime | None
    finished_at: datetime | None
    request_id: int | None
    environment_slug: str
    run_id: int | None
    run_outcome: str | None
    run_applied: list[str] | None
    run_total_steps: int | None
    run_started_at: datetime | None
    run_finished_at: datetime | None
    run_error: str | None


def _live_state(row: _Row) -> str:
    """The target's state now: its child run's, when that moved since the scheduler's last step."""
    state = row.state
    if state in RolloutTarget.IN_FLIGHT and row.run_outcome is not None:
        state = _RUN_STATE.get(row.run_outcome, state)
    if state == Target.SUCCEEDED and row.gate_passed is False:
        return "gate_failed"
    return state


def _elapsed(
    started: datetime | None, finished: datetime | None, now: datetime, *, running: bool
) -> str:
    if started is None:
        return "—"
    end = finished or (now if running else None)
    if end is None:
        return "—"
    return duration_text(max((end - started).total_seconds(), 0.0))


def _target_rows(rollout: Rollout) -> list[_Row]:
    """Every target with its current child request's run: one joined query, plain tuples
    (500 targets: no model instances to build, the page answers well under 150 ms)."""
    rows = (
        RolloutTarget.objects.filter(rollout=rollout)
        .order_by("position", "pk")
        .values_list(
            "name",
            "position",
            "wave",
            "state",
            "attempts",
            "applied",
            "total_steps",
            "error",
            "gate_passed",
            "started_at",
            "finished_at",
            "request_id",
            "environment__slug",
            "request__run__id",
            "request__run__outcome",
            "request__run__applied",
            "request__run__total_steps",
            "request__run__started_at",
            "request__run__finished_at",
            "request__run__error",
        )
    )
    return [_Row(*values) for values in rows]


def _target_view(row: _Row, now: datetime, detail_url: str) -> TargetView:
    state = _live_state(row)
    words, tone = TARGET_STYLES.get(state, (state, ""))
    if row.run_id is not None:
        applied = len(row.run_applied or [])
        total = row.run_total_steps or row.total_steps
        started, finished = row.run_started_at, row.run_finished_at
        error = row.error or (row.run_error or "" if state in _ATTENTION else "")
    else:
        applied, total = row.applied, row.total_steps
        started, finished, error = row.started_at, row.finished_at, row.error
    return TargetView(
        name=row.name,
        wave=row.wave,
        position=row.position,
        state=state,
        words=words,
        tone=tone,
        attempts=row.attempts,
        applied=applied,
        total_steps=total,
        error="" if state == Target.QUEUED else error,
        elapsed=_elapsed(started, finished, now, running=state == Target.RUNNING),
        request_url=detail_url.replace(str(_URL_ID), str(row.request_id)) if row.request_id else "",
        environment_slug=row.environment_slug,
    )


def rollout_live(*, rollout: Rollout) -> RolloutLive:
    """The rollout as the live page shows it (constant number of queries; see the module)."""
    now = timezone.now()
    request = rollout.request
    # reverse() once: the child requests' URLs differ only by their id.
    detail_url = reverse("approvals:detail", args=[_URL_ID])
    targets = [_target_view(row, now, detail_url) for row in _target_rows(rollout)]
    by_wave: dict[int, list[TargetView]] = defaultdict(list)
    for target in targets:
        by_wave[target.wave].append(target)
    counts = Counter(target.state for target in targets)
    waves = []
    first = 1
    for number in range(1, max([rollout.wave_count, *by_wave.keys(), 0]) + 1):
        members = by_wave.get(number, [])
        waves.append(
            WaveView(
                number=number,
                first=first,
                last=first + len(members) - 1,
                targets=members,
                counts=dict(Counter(target.state for target in members)),
                is_current=number == rollout.current_wave and rollout.state in _MOVING,
                is_canary=number == 1 and rollout.wave_count > 1 and len(members) == 1,
            )
        )
        first += len(members)
    state, words, tone = _state_words(rollout, request)
    live = RolloutLive(
        rollout=rollout,
        request=request,
        state=state,
        words=words,
        tone=tone,
        waves=waves,
        counts=dict(counts),
        attention=[t for t in targets if t.state in _ATTENTION][:ATTENTION_ROWS],
        in_flight=[t for t in targets if t.state in ("running", "queued")],
        elapsed=_elapsed(rollout.started_at, rollout.ended_at, now, running=True),
    )
    if rollout.state == Rollout.State.SOAKING and rollout.soak_until is not None:
        left = max((rollout.soak_until - now).total_seconds(), 0.0)
        live.soak_seconds = int(left)
        live.soak_left = duration_text(left) if left >= 1 else "a moment"
    if rollout.state == Rollout.State.PENDING and request.status == MigrationRequest.Status.PENDING:
        live.approvals = request.approvals.filter(
            decision="approve", expired_at__isnull=True
        ).count()
    return live


def _state_words(rollout: Rollout, request: MigrationRequest) -> tuple[str, str, str]:
    """The state to show: a rollout that never started says why (rejected, cancelled, stale)."""
    if rollout.state == Rollout.State.PENDING and request.status in (
        MigrationRequest.Status.REJECTED,
        MigrationRequest.Status.CANCELLED,
        MigrationRequest.Status.STALE,
    ):
        label = request.get_status_display()
        return request.status, f"Not started: request {label.lower()}", "muted"
    if (
        rollout.state == Rollout.State.PENDING
        and request.status == MigrationRequest.Status.APPROVED
    ):
        return rollout.state, "Approved, starting", "info"
    words, tone = ROLLOUT_STYLES.get(rollout.state, (rollout.state, ""))
    return rollout.state, words, tone


def rollout_progress(*, rollout: Rollout) -> RolloutLive:
    """What the request page's status box shows of the rollout: its state and counts (one query)."""
    counts: Counter[str] = Counter()
    rows = (
        RolloutTarget.objects.filter(rollout=rollout)
        .order_by()
        .values_list("state", "gate_passed")
        .annotate(n=Count("pk"))
    )
    for state, gate_passed, n in rows:
        counts["gate_failed" if state == Target.SUCCEEDED and gate_passed is False else state] += n
    state, words, tone = _state_words(rollout, rollout.request)
    return RolloutLive(
        rollout=rollout,
        request=rollout.request,
        state=state,
        words=words,
        tone=tone,
        waves=[],
        counts=dict(counts),
        attention=[],
        in_flight=[],
        elapsed="",
    )


# --- what approvers read: the pinned plans and the waves ---------------------------------


@dataclass
class PlanView:
    """One pinned plan of a fleet's request, with its risk and who follows it."""

    plan: RolloutPlan
    risk: PlanRiskSummary
    names: list[str]

    @property
    def label(self) -> str:
        return f"{heads_text(self.plan.from_heads)} → {heads_text(self.plan.to_heads)}"

    @property
    def more(self) -> int:
        return max(self.plan.target_count - len(self.names), 0)


@dataclass
class WaveTargets:
    """One wave of a pinned rollout: its targets in rollout order."""

    number: int
    first: int
    names: list[str] = field(default_factory=list)

    @property
    def last(self) -> int:
        return self.first + len(self.names) - 1

    @property
    def shown(self) -> list[str]:
        return self.names[:WAVE_NAMES_SHOWN]

    @property
    def hidden(self) -> list[str]:
        return self.names[WAVE_NAMES_SHOWN:]


WAVE_NAMES_SHOWN = 12
PLAN_NAMES_SHOWN = 6


@dataclass
class FleetReview:
    rollout: Rollout
    plans: list[PlanView]
    waves: list[WaveTargets]
    total: int
    skipped: list[tuple[str, str]]  # (name, why) of targets left out at request time
    unread: list[str]  # targets whose heads were not known: planned at their turn

    @property
    def soak(self) -> str:
        soak = self.rollout.soak
        return duration_text(soak.total_seconds()) if soak else ""


def fleet_review(*, rollout: Rollout) -> FleetReview:
    """The pinned plans and waves of a fleet's request (two queries, whatever the targets)."""
    fleet = rollout.request.environment
    rows = list(
        RolloutTarget.objects.filter(rollout=rollout)
        .order_by("position", "pk")
        .values_list("wave", "name", "plan_id", "state", "error", "attempts")
    )
    names_of_plan: dict[int, list[str]] = defaultdict(list)
    waves: dict[int, WaveTargets] = {}
    skipped, unread = [], []
    position = 1
    for wave, name, plan_id, state, error, attempts in rows:
        waves.setdefault(wave, WaveTargets(number=wave, first=position)).names.append(name)
        position += 1
        if plan_id is not None:
            names_of_plan[plan_id].append(name)
        elif state == Target.SKIPPED and not attempts:
            skipped.append((name, error))
        elif not attempts:
            unread.append(name)
    plans = [
        PlanView(
            plan=plan,
            risk=pinned_risk_summary(
                findings=plan.findings,
                revisions=len(plan.steps),
                environment=fleet,
                sql=plan.sql,
            ),
            names=names_of_plan.get(plan.pk, [])[:PLAN_NAMES_SHOWN],
        )
        for plan in rollout.plans.all()
    ]
    return FleetReview(
        rollout=rollout,
        plans=plans,
        waves=[waves[number] for number in sorted(waves)],
        total=len(rows),
        skipped=skipped,
        unread=unread,
    )


# --- the request form: what a fleet's request would pin ----------------------------------


@dataclass
class HeadSetPreview:
    """The targets at one set of heads, and the plan a request would pin for them."""

    heads: list[str]
    names: list[str]
    count: int
    plan: Any = None  # EnvironmentPlan (cached, from a representative target)
    risk: PlanRiskSummary | None = None
    care: list[str] = field(default_factory=list)
    error: str = ""

    @property
    def heads_label(self) -> str:
        return heads_text(self.heads)

    @property
    def to_label(self) -> str:
        return heads_text(self.plan.plan.to_heads) if self.plan and self.plan.plan else ""

    @property
    def steps(self) -> list[Any]:
        return list(self.plan.revisions) if self.plan and not self.error else []

    @property
    def dialect(self) -> str:
        return self.plan.dialect if self.plan else ""

    @property
    def more(self) -> int:
        return max(self.count - len(self.names), 0)


@dataclass
class FleetPreview:
    """The request form's preview of a fleet's request (``is_fleet`` tells the template)."""

    environment: Environment
    direction: str
    target: str
    groups: list[HeadSetPreview]
    unread: list[str]
    wave_sizes: list[int]
    total: int
    oldest_read: datetime | None
    names: list[str] = field(default_factory=list)  # every target, in rollout order
    is_fleet: bool = True
    live: bool = False

    @property
    def planned(self) -> list[HeadSetPreview]:
        return [group for group in self.groups if group.steps]

    @property
    def up_to_date(self) -> int:
        return sum(g.count for g in self.groups if not g.steps and not g.error)

    @property
    def care(self) -> list[str]:
        return list(dict.fromkeys(reason for group in self.groups for reason in group.care))

    @property
    def status_age(self) -> str:
        return age_text(timezone.now() - self.oldest_read) if self.oldest_read else ""

    @property
    def soak(self) -> str:
        soak = self.environment.soak
        return duration_text(soak.total_seconds()) if soak else ""

    @property
    def waves(self) -> list[tuple[int, int, str]]:
        """(number, size, its targets' names when there are 3 or fewer) of each wave."""
        out, first = [], 0
        for number, size in enumerate(self.wave_sizes, start=1):
            names = ", ".join(self.names[first : first + size]) if size <= 3 else ""
            out.append((number, size, names))
            first += size
        return out


def fleet_plan_preview(*, environment: Environment, direction: str, target: str) -> FleetPreview:
    """The plans a request for fleet ``environment`` would pin, from its targets' cached statuses.

    Grouped as ``fleet_request_create`` groups them (the heads each target's
    status last read); each group's plan is the cached plan of its first
    target. No database is read: a fleet of 500 is not read at request time.
    """
    from dashboard.approvals.selectors import care_reasons

    rows = list(
        Environment.objects.targets_of(environment).values_list(
            "pk", "target_name", "status_state", "current_heads", "status_refreshed_at"
        )
    )
    by_heads: dict[tuple[str, ...], list[tuple[int, str]]] = defaultdict(list)
    unread: list[str] = []
    read_at = [refreshed for *_, refreshed in rows if refreshed is not None]
    for pk, name, state, heads, _refreshed in rows:
        if state in READ_STATES or state == Environment.StatusState.NO_VERSION_TABLE:
            by_heads[heads_key(heads)].append((pk, name))
        else:
            unread.append(name)
    representatives = Environment.objects.in_bulk([members[0][0] for members in by_heads.values()])
    groups = []
    for heads, members in sorted(by_heads.items(), key=lambda item: -len(item[1])):
        group = HeadSetPreview(
            heads=list(heads),
            names=[name for _, name in members[:PLAN_NAMES_SHOWN]],
            count=len(members),
        )
        representative = representatives[members[0][0]]
        plan = environment_plan(environment=representative, target=target, direction=direction)  # type: ignore[arg-type]
        group.plan = plan
        if plan.error or plan.plan is None:
            group.error = plan.error or "no plan"
        elif plan.revisions:
            group.risk = environment_plan_summary(environment=representative, preview=plan)
            needs_care = any(r.risk is not None and r.risk.needs_care for r in plan.revisions)
            group.care = care_reasons(
                direction=direction, destructive=needs_care, summary=group.risk
            )
        groups.append(group)
    ends = wave_ends(environment.waves or ["100%"], len(rows))
    return FleetPreview(
        environment=environment,
        direction=direction,
        target=target,
        groups=groups,
        unread=unread,
        wave_sizes=[end - start for start, end in zip([0, *ends], ends, strict=False)],
        total=len(rows),
        oldest_read=min(read_at) if read_at else None,
        names=[name for _, name, *_ in rows],
    )
