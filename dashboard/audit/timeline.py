""" "Who applied what": an environment's migration requests rebuilt from audit events alone.

Grouped by request id, ``dashboard.request.*`` and ``dashboard.run.*`` events
are replayed in chain order; the result does not depend on the approvals
app's tables, so it shows what the tamper-evident log says. The contract of
those events is the approvals app's (``dashboard/approvals/transitions.py``):

- lifecycle events carry the request's approved SQL hash in ``sql_sha256``;
  ``dashboard.request.created`` has the approved plan in ``payload.revisions``;
- the events that end a run (``dashboard.run.succeeded|failed|interrupted|
  cancelled|unknown``) and the ones that later replace that outcome
  (``dashboard.run.corrected``, ``dashboard.run.settled``) carry in
  ``sql_sha256`` the SHA-256 of the statements actually sent to the target
  ("" when none was), and in the payload ``applied`` (revisions whose
  migration ran, in order), ``committed``, ``final_heads``,
  ``approved_revisions``, ``approved_sql_sha256`` and ``executed_statements``.

A fleet's request (docs/fleets.md) runs as a rollout: its own events are
``dashboard.rollout.*`` (started, halted, resumed, proceeded, then succeeded,
failed or cancelled), and each target runs a child request of its own, on the
target's environment (slug ``<fleet>--<target>``), whose ``dashboard.run.*``
events carry ``fleet``, ``target`` and ``parent_request`` in the payload. The
timeline of the fleet groups those children under their parent
(``TimelineEntry.targets``); a child is approved through its parent, so the
"approved before execution" check of each target's start is made against the
parent's approvals at that moment.

The approved hash covers the SQL rendered offline at request time, the
executed one the statements sent online: they differ by nature and are shown,
not compared. What is compared is which revisions ran against the plan that
was approved. Events written before that contract lack those payload keys;
checks that need a missing key are skipped, never guessed.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db.models import Q

from dashboard.audit.models import AuditEvent

RUN_END_VERBS = frozenset({"succeeded", "failed", "interrupted", "cancelled", "unknown"})
RUN_CORRECTION_VERBS = frozenset({"corrected", "settled"})
ROLLOUT_END_VERBS = frozenset({"succeeded", "failed", "cancelled"})
# A fleet's target is an environment of its own: ``<fleet>--<target>``
# (``dashboard.environments.models.target_slug``; audit imports no other app).
TARGET_SLUG_SEPARATOR = "--"


@dataclass
class Approval:
    """One approver's approval as the log recorded it."""

    username: str
    at: datetime
    seq: int
    counted: bool = True  # False once expired or discounted by a later ``request.reopened``


@dataclass
class Execution:
    """What a run-ending (or correcting) event says the run did."""

    seq: int
    outcome: str
    sql_sha256: str
    payload: dict[str, Any]

    @property
    def applied(self) -> list[str] | None:
        return _revision_list(self.payload.get("applied"))

    @property
    def committed(self) -> list[str] | None:
        return _revision_list(self.payload.get("committed"))

    @property
    def executed_statements(self) -> int | None:
        value = self.payload.get("executed_statements")
        return value if isinstance(value, int) and not isinstance(value, bool) else None


@dataclass
class TimelineEntry:
    """One migration request of an environment, rebuilt from its audit events only."""

    request_id: int
    direction: str = ""
    from_revisions: list[str] = field(default_factory=list)
    to_revisions: list[str] = field(default_factory=list)
    approved_revisions: list[str] | None = None  # the plan of ``request.created``
    requested_by: str = ""
    requested_at: datetime | None = None
    approvals: list[Approval] = field(default_factory=list)
    approval_not_required_at: datetime | None = None
    decided_by: str = ""  # who rejected / cancelled, if anyone
    executed_by: str = ""
    started_at: datetime | None = None
    ended_at: datetime | None = None
    outcome: str = "not run"
    corrected_from: str = ""  # the outcome a run.corrected / run.settled replaced
    sql_approved: str = ""
    sql_executed: str = ""
    executions: list[Execution] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    events: list[AuditEvent] = field(default_factory=list)
    # A fleet's request: its rollout, and one entry per target's child request.
    is_rollout: bool = False
    targets: list[TimelineEntry] = field(default_factory=list)
    # A child request: which fleet's request it is a target of.
    parent_request: int | None = None
    fleet: str = ""
    target: str = ""

    @property
    def duration(self) -> timedelta | None:
        if self.started_at and self.ended_at:
            return self.ended_at - self.started_at
        return None

    @property
    def final_execution(self) -> Execution | None:
        return self.executions[-1] if self.executions else None

    def flag(self, problem: str) -> None:
        if problem not in self.problems:
            self.problems.append(problem)

    @property
    def target_outcomes(self) -> list[tuple[str, int]]:
        """(outcome, targets) of a rollout, each target counted once at its latest attempt."""
        latest: dict[str, TimelineEntry] = {}
        for child in self.targets:
            latest[child.target or str(child.request_id)] = child
        counts = Counter(child.outcome for child in latest.values())
        return sorted(counts.items(), key=lambda item: (-item[1], item[0]))

    @property
    def target_count(self) -> int:
        return len({child.target or str(child.request_id) for child in self.targets})

    @property
    def target_problems(self) -> int:
        return sum(1 for child in self.targets if child.problems)


def audit_run_timeline(*, environment: str, limit: int = 50) -> list[TimelineEntry]:
    """The ``limit`` most recent requests of an environment, newest first.

    Every entry lists the change-management problems found: requester among
    the approvers, execution without an approval that still counted (or an
    approval after it started), revisions applied that were not in the approved plan, a
    succeeded run that did not apply exactly the approved plan, statements
    executed without a hash of what ran. See the module docstring.
    """
    request_ids = _recent_request_ids(environment=environment, limit=limit)
    events = AuditEvent.objects.filter(_lifecycle(), request_id__in=request_ids).order_by("seq")
    entries = {request_id: TimelineEntry(request_id=request_id) for request_id in request_ids}
    for event in events:
        entries[event.request_id].events.append(event)
    rollouts = [
        entry.request_id
        for entry in entries.values()
        if any(event.action.startswith("dashboard.rollout.") for event in entry.events)
    ]
    children = _target_entries(fleet=environment, parents=rollouts) if rollouts else {}
    for entry in entries.values():
        targets = children.get(entry.request_id, [])
        target_starts = [
            event
            for child in targets
            for event in child.events
            if event.action == "dashboard.run.started"
        ]
        _Replay(entry, target_starts=target_starts).run()
        entry.targets = targets
    return [entries[request_id] for request_id in request_ids]


def _lifecycle() -> Q:
    return (
        Q(action__startswith="dashboard.request.")
        | Q(action__startswith="dashboard.run.")
        | Q(action__startswith="dashboard.rollout.")
    )


def _target_entries(*, fleet: str, parents: list[int]) -> dict[int, list[TimelineEntry]]:
    """The child requests of the rollouts ``parents`` of fleet ``fleet``, replayed, by parent.

    Their events are on the targets' environments; found through the
    ``(environment_slug, seq)`` index (the targets' slugs, from the log's own
    list of slugs) and the ``parent_request`` of their payload, in one query.
    """
    from dashboard.audit.selectors import audit_environment_slugs

    prefix = f"{fleet}{TARGET_SLUG_SEPARATOR}"
    slugs = [slug for slug in audit_environment_slugs() if slug.startswith(prefix)]
    if not slugs:
        return {}
    events = AuditEvent.objects.filter(
        _lifecycle(), environment_slug__in=slugs, payload__parent_request__in=parents
    ).order_by("seq")
    entries: dict[int, TimelineEntry] = {}
    for event in events:
        entry = entries.setdefault(event.request_id, TimelineEntry(request_id=event.request_id))
        entry.events.append(event)
    by_parent: dict[int, list[TimelineEntry]] = {}
    for entry in entries.values():
        _Replay(entry).run()
        if entry.parent_request is not None:
            by_parent.setdefault(entry.parent_request, []).append(entry)
    return by_parent


def _recent_request_ids(*, environment: str, limit: int) -> list[int]:
    """Distinct request ids of the environment's newest lifecycle events.

    Walks the ``(environment_slug, seq)`` index newest first in batches
    instead of grouping every event of the environment, so the cost depends
    on ``limit``, not on the size of the log (bounded at 100 batches).
    """
    found: dict[int, None] = {}
    queryset = AuditEvent.objects.filter(
        _lifecycle(), environment_slug=environment, request_id__isnull=False
    )
    before: int | None = None
    for _ in range(100):
        page = queryset if before is None else queryset.filter(seq__lt=before)
        batch = list(page.order_by("-seq").values_list("seq", "request_id")[:500])
        for _seq, request_id in batch:
            found.setdefault(request_id)
        if len(found) >= limit or len(batch) < 500:
            break
        before = batch[-1][0]
    return list(found)[:limit]


def actor_label(event: AuditEvent) -> str:
    if event.actor_type == AuditEvent.ActorType.USER:
        return event.actor_username
    if event.actor_type == AuditEvent.ActorType.SYSTEM:
        return f"worker {event.actor_host} pid {event.actor_pid}"
    return "anonymous"


def _revision_list(value: Any) -> list[str] | None:
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return list(value)
    return None


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


class _Replay:
    """Replays one request's events into its entry (one method per kind of event)."""

    def __init__(
        self, entry: TimelineEntry, *, target_starts: list[AuditEvent] | None = None
    ) -> None:
        self.entry = entry
        self.requester_id: int | None = None
        self.no_approval_needed = False  # approval_not_required, until a reopening
        # A rollout's targets' run.started events, replayed among the parent's own.
        self.target_starts = target_starts or []

    def run(self) -> None:
        handlers = {
            "dashboard.request.created": self._request_created,
            "dashboard.request.approved": self._request_approved,
            "dashboard.request.approval_not_required": self._request_approval_not_required,
            "dashboard.request.reopened": self._request_reopened,
            "dashboard.request.expired": self._request_expired,
            "dashboard.request.stale": self._request_stale,
            "dashboard.request.rejected": self._request_rejected,
            "dashboard.request.cancelled": self._request_cancelled,
            "dashboard.run.started": self._run_started,
            "dashboard.run.cancel_requested": self._run_cancel_requested,
            "dashboard.rollout.started": self._rollout_started,
            "dashboard.rollout.halted": self._rollout_halted,
            "dashboard.rollout.resumed": self._rollout_resumed,
            "dashboard.rollout.proceeded": self._rollout_proceeded,
        }
        merged = sorted([*self.entry.events, *self.target_starts], key=lambda event: event.seq)
        for event in merged:
            if event.request_id != self.entry.request_id:
                self._target_started(event)
                continue
            self._revisions(event)
            verb = event.action.rsplit(".", 1)[-1]
            if event.action in handlers:
                handlers[event.action](event)
            elif event.action == f"dashboard.run.{verb}" and verb in RUN_END_VERBS:
                self._run_ended(event, verb)
            elif event.action == f"dashboard.run.{verb}" and verb in RUN_CORRECTION_VERBS:
                self._run_corrected(event, verb)
            elif event.action == f"dashboard.rollout.{verb}" and verb in ROLLOUT_END_VERBS:
                self._rollout_ended(event, verb)
        self._check_executions()

    def _revisions(self, event: AuditEvent) -> None:
        entry = self.entry
        # A run's end event carries the final heads in ``to_revisions``; the
        # request's from → to is what it asked for.
        if event.action.startswith("dashboard.request.") or event.action.endswith(".started"):
            entry.from_revisions = event.from_revision_list or entry.from_revisions
            entry.to_revisions = event.to_revision_list or entry.to_revisions

    # --- the request ------------------------------------------------------------

    def _request_created(self, event: AuditEvent) -> None:
        entry = self.entry
        entry.requested_by, entry.requested_at = actor_label(event), event.created_at
        self.requester_id = event.actor_id if event.actor_type == "user" else None
        entry.sql_approved = event.sql_sha256
        entry.direction = str(event.payload.get("direction", ""))
        entry.approved_revisions = _revision_list(event.payload.get("revisions"))

    def _request_approved(self, event: AuditEvent) -> None:
        entry = self.entry
        approver = actor_label(event)
        entry.approvals.append(Approval(approver, event.created_at, event.seq))
        if self.requester_id is not None and event.actor_id == self.requester_id:
            entry.flag(f"approved by its own requester ({approver})")
        if entry.started_at is not None:
            entry.flag(f"approval by {approver} after execution started")
        if event.sql_sha256 and entry.sql_approved and event.sql_sha256 != entry.sql_approved:
            entry.flag(f"{approver} approved other SQL than the request's")

    def _request_approval_not_required(self, event: AuditEvent) -> None:
        # The environment needs no approver (e.g. dev): not an approval by the
        # requester, and enough for the run to start.
        self.entry.approval_not_required_at = event.created_at
        self.no_approval_needed = True

    def _request_reopened(self, event: AuditEvent) -> None:
        entry = self.entry
        # What was approved before no longer counts as "approved before start".
        for approval in entry.approvals:
            approval.counted = False
        self.no_approval_needed = False
        note = event.payload.get("note") or "approvals stopped counting"
        entry.notes.append(f"reopened {_utc(event.created_at)}: {note}")

    def _request_expired(self, event: AuditEvent) -> None:
        names = event.payload.get("expired_approvals")
        for approval in self.entry.approvals:
            if not isinstance(names, list) or approval.username in names:
                approval.counted = False
        self.entry.notes.append(f"approvals expired {_utc(event.created_at)}")

    def _request_stale(self, event: AuditEvent) -> None:
        self.entry.outcome = "stale"
        note = event.payload.get("note")
        self.entry.notes.append(f"stale: {note}" if note else "stale")

    def _request_rejected(self, event: AuditEvent) -> None:
        self.entry.outcome, self.entry.decided_by = "rejected", actor_label(event)

    def _request_cancelled(self, event: AuditEvent) -> None:
        self.entry.outcome, self.entry.decided_by = "cancelled", actor_label(event)

    # --- the run ----------------------------------------------------------------

    def _run_started(self, event: AuditEvent) -> None:
        entry = self.entry
        entry.executed_by, entry.started_at, entry.outcome = (
            actor_label(event),
            event.created_at,
            "running",
        )
        parent = event.payload.get("parent_request") if isinstance(event.payload, dict) else None
        if isinstance(parent, int) and not isinstance(parent, bool):
            # One target of a rollout: approved through its parent (checked there).
            entry.parent_request = parent
            entry.fleet = str(event.payload.get("fleet") or "")
            entry.target = str(event.payload.get("target") or "")
            return
        # How many approvals the policy wanted is the approvals app's to judge
        # (who still holds the role is not in the log); here: at least one.
        if not self.no_approval_needed and not any(a.counted for a in entry.approvals):
            entry.flag("executed without an approval recorded before it")

    # --- a fleet's rollout ----------------------------------------------------------

    def _rollout_started(self, event: AuditEvent) -> None:
        entry = self.entry
        entry.is_rollout = True
        entry.executed_by, entry.started_at, entry.outcome = (
            actor_label(event),
            event.created_at,
            "running",
        )
        if not self.no_approval_needed and not any(a.counted for a in entry.approvals):
            entry.flag("rollout started without an approval recorded before it")

    def _target_started(self, event: AuditEvent) -> None:
        """A target's run started: the parent's approvals must still count at that moment."""
        if self.no_approval_needed or any(a.counted for a in self.entry.approvals):
            return
        target = event.payload.get("target") if isinstance(event.payload, dict) else None
        self.entry.flag(
            f"target {target or event.environment_slug} started without an approval that"
            " still counted"
        )

    def _rollout_halted(self, event: AuditEvent) -> None:
        self.entry.outcome = "halted"
        reason = event.payload.get("reason") if isinstance(event.payload, dict) else None
        self.entry.notes.append(
            f"halted {_utc(event.created_at)}: {reason or 'no reason recorded'}"
        )

    def _rollout_resumed(self, event: AuditEvent) -> None:
        self.entry.outcome = "running"
        retried = event.payload.get("retried") if isinstance(event.payload, dict) else None
        detail = f", {retried} target(s) retried" if isinstance(retried, int) else ""
        self.entry.notes.append(f"resumed by {actor_label(event)} {_utc(event.created_at)}{detail}")

    def _rollout_proceeded(self, event: AuditEvent) -> None:
        self.entry.notes.append(
            f"soak ended early by {actor_label(event)} {_utc(event.created_at)}"
        )

    def _rollout_ended(self, event: AuditEvent, outcome: str) -> None:
        entry = self.entry
        entry.is_rollout = True
        entry.ended_at, entry.outcome = event.created_at, outcome
        if outcome == "cancelled" and event.actor_type == AuditEvent.ActorType.USER:
            entry.decided_by = actor_label(event)

    def _run_cancel_requested(self, event: AuditEvent) -> None:
        self.entry.notes.append(
            f"cancel requested by {actor_label(event)} {_utc(event.created_at)}"
        )

    def _run_ended(self, event: AuditEvent, outcome: str) -> None:
        entry = self.entry
        entry.ended_at, entry.outcome, entry.corrected_from = event.created_at, outcome, ""
        self._execution(event, outcome)

    def _run_corrected(self, event: AuditEvent, verb: str) -> None:
        entry = self.entry
        previous = str(event.payload.get("previous_outcome") or entry.outcome)
        outcome = str(event.payload.get("outcome") or entry.outcome)
        entry.outcome, entry.corrected_from = outcome, previous
        entry.ended_at = entry.ended_at or event.created_at
        entry.notes.append(f"{verb} {_utc(event.created_at)}: {previous} → {outcome}")
        self._execution(event, outcome)

    def _execution(self, event: AuditEvent, outcome: str) -> None:
        payload = event.payload if isinstance(event.payload, dict) else {}
        self.entry.executions.append(Execution(event.seq, outcome, event.sql_sha256, payload))
        self.entry.sql_executed = event.sql_sha256

    def _check_executions(self) -> None:
        entry = self.entry
        for execution in entry.executions:
            plan = _plan(entry, execution)
            if plan is not None and execution.applied is not None:
                unplanned = [revision for revision in execution.applied if revision not in plan]
                if unplanned:
                    entry.flag(f"applied {' '.join(unplanned)}, not in the approved plan")
            statements = execution.executed_statements
            if statements and not execution.sql_sha256:
                entry.flag(
                    f"executed {statements} statements but recorded no hash of the SQL that ran"
                )
            at_run = _revision_list(execution.payload.get("approved_revisions"))
            if at_run is not None and entry.approved_revisions not in (None, at_run):
                entry.flag("the plan at run time is not the plan that was requested")
            approved_sql = execution.payload.get("approved_sql_sha256")
            if approved_sql and entry.sql_approved and approved_sql != entry.sql_approved:
                entry.flag("the SQL hash at run time is not the one that was approved")
        final = entry.final_execution
        if final is None or final.outcome != "succeeded":
            return
        plan = _plan(entry, final)
        if plan is None:
            return
        if final.applied is not None and final.applied != plan:
            entry.flag(
                f"succeeded, but applied [{' '.join(final.applied)}]"
                f" instead of the approved [{' '.join(plan)}]"
            )
        if final.committed is not None and sorted(final.committed) != sorted(plan):
            entry.flag(
                f"succeeded, but committed [{' '.join(final.committed)}]"
                f" instead of the approved [{' '.join(plan)}]"
            )


def _plan(entry: TimelineEntry, execution: Execution) -> list[str] | None:
    """The approved revisions: the requested plan, else what the run's event says was approved."""
    if entry.approved_revisions is not None:
        return entry.approved_revisions
    return _revision_list(execution.payload.get("approved_revisions"))
