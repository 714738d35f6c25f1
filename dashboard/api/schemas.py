"""Request and response bodies of the API (pydantic, via django-ninja).

These classes are the OpenAPI document: change them and the document
changes. ``GraphOut`` mirrors :func:`dashboard.migrator.graph_export.revision_graph_as_dict`
(the JSON of ``manage.py revision_graph --format json``) field for field.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from ninja import Field, Schema


class ErrorOut(Schema):
    detail: str = Field(description="What went wrong, for people.")
    errors: list[dict[str, Any]] | None = Field(
        default=None, description="Field errors of a malformed body."
    )


# --- environments ---------------------------------------------------------


class FleetHeadSetOut(Schema):
    heads: list[str]
    targets: int


class FleetSummaryOut(Schema):
    states: dict[str, int] = Field(
        description="Targets per state: up_to_date, pending, drifted, unreachable and unknown"
        " (not read yet)."
    )
    head_sets: list[FleetHeadSetOut] = Field(
        description="Targets read up to date or pending, per set of current heads, most first."
    )
    oldest_read: datetime | None = Field(description="The oldest read among the targets read.")


class FleetOut(Schema):
    targets: int = Field(description="Current targets (retired ones left out).")
    summary: FleetSummaryOut


class TargetOfOut(Schema):
    fleet: str = Field(description="The fleet's slug.")
    name: str
    position: int = Field(description="Place in the fleet's rollout order (1 is first).")
    retired: bool = Field(description="Removed from the fleet's list, kept for its history.")


class EnvironmentOut(Schema):
    slug: str
    name: str
    position: int = Field(description="Place in the pipeline (dev 1, staging 2, production 3).")
    description: str
    status: str = Field(
        description="up_to_date, pending, unreachable, no_version_table, unknown_revision or unknown."
    )
    status_label: str
    current_heads: list[str]
    pending: list[str] = Field(description="Revisions not yet applied, in upgrade order.")
    status_error: str
    status_refreshed_at: datetime | None
    drift: str | None = Field(
        description="clean, drift, not_at_head, error, or null when never checked."
    )
    dialect: str
    required_approvals: int
    url: str = Field(description="The environment's page in the dashboard.")
    fleet: FleetOut | None = Field(
        description="For a fleet: its targets' summary (a fleet's own status fields stay"
        " unknown, its targets have the status); null for any other environment."
    )
    target_of: TargetOfOut | None = Field(
        description="For one target of a fleet (slug <fleet>--<name>): which; null otherwise."
    )


# --- revision graph ---------------------------------------------------------


class GraphRevisionOut(Schema):
    id: str
    down_revisions: list[str]
    branch_labels: list[str]
    depends_on: list[str]
    message: str
    create_date: str | None
    path: str
    sha256: str
    row: int
    lane: int


class GraphErrorOut(Schema):
    path: str | None
    line: int | None
    problem: str


class GraphOut(Schema):
    revisions: list[GraphRevisionOut]
    heads: list[str]
    bases: list[str]
    merge_points: list[str]
    branch_points: list[str]
    errors: list[GraphErrorOut]


# --- migration requests -------------------------------------------------------


SLUG_PATTERN = r"^[-a-zA-Z0-9_]+$"
# No NUL (PostgreSQL text refuses it); targets are one word.
TARGET_PATTERN = r"^[^\s\x00]+$"
TEXT_PATTERN = r"^[^\x00]*$"


class RequestIn(Schema):
    environment: str = Field(
        min_length=1, max_length=50, pattern=SLUG_PATTERN, description="Environment slug."
    )
    direction: Literal["upgrade", "downgrade"] = "upgrade"
    target: str = Field(
        min_length=1,
        max_length=200,
        pattern=TARGET_PATTERN,
        description="As in the browser: heads, head, label@head, a revision id, -1 …",
    )
    reason: str = Field(
        min_length=1, max_length=5000, pattern=TEXT_PATTERN, description="Why; shown to approvers."
    )


class PlanStepOut(Schema):
    revision: str
    message: str


class ApprovalOut(Schema):
    approver: str
    decision: Literal["approve", "reject"]
    comment: str
    created_at: datetime
    expired: bool


class RunStepOut(Schema):
    index: int
    revision: str
    applied_at: datetime


class RunOut(Schema):
    outcome: Literal["running", "unknown", "succeeded", "failed", "interrupted", "cancelled"]
    phase: str
    started_at: datetime
    heartbeat_at: datetime
    finished_at: datetime | None
    total_steps: int
    current_revision: str
    progress_percent: int
    applied: list[RunStepOut]
    committed: list[str]
    final_heads: list[str] | None
    reason: str
    error: str


# --- fleet rollouts -----------------------------------------------------------

RolloutState = Literal["pending", "running", "soaking", "halted", "succeeded", "cancelled"]
TargetState = Literal[
    "pending", "queued", "running", "succeeded", "failed", "interrupted", "unknown", "skipped"
]


class RolloutWaveOut(Schema):
    number: int = Field(description="1 is the canary.")
    size: int = Field(description="Targets in this wave.")
    state: Literal["pending", "running", "soaking", "halted", "done", "cancelled"] = Field(
        description="pending (not reached), the rollout's state while it is the current wave,"
        " done (passed), cancelled."
    )
    counts: dict[str, int] = Field(description="Targets of the wave in each target state.")


class RolloutPlanOut(Schema):
    index: int
    from_heads: list[str]
    to_heads: list[str]
    revisions: list[str] = Field(description="The plan's revisions, in the order they run.")
    sql_sha256: str
    destructive: bool
    targets: int = Field(description="How many targets were at from_heads when it was pinned.")


class RolloutTargetOut(Schema):
    name: str
    environment: str = Field(description="The target's own environment slug (<fleet>--<name>).")
    wave: int
    state: TargetState
    plan: int | None = Field(description="Index of the plan it runs; null until it has one.")
    request: int | None = Field(
        description="The child request of its current attempt (GET /requests/{id}), or null."
    )
    attempts: int
    from_heads: list[str]
    to_heads: list[str]
    final_heads: list[str] | None = Field(description="Heads read when its run ended.")
    applied: int
    total_steps: int
    gate_passed: bool | None
    error: str
    started_at: datetime | None
    finished_at: datetime | None


class RolloutOut(Schema):
    state: RolloutState
    state_label: str
    current_wave: int
    halted_reason: str = Field(description="Why it halted (which targets failed), or empty.")
    parallelism: int
    halt_after_failures: int
    soak_seconds: float | None
    soak_until: datetime | None = Field(description="When the current soak ends, while soaking.")
    gate_sql: str
    started_at: datetime | None
    ended_at: datetime | None
    counts: dict[str, int] = Field(description="All targets in each target state.")
    waves: list[RolloutWaveOut]
    plans: list[RolloutPlanOut]
    targets: list[RolloutTargetOut] = Field(description="In rollout order.")


class RequestOut(Schema):
    id: int
    url: str = Field(description="The request's page in the dashboard (post it in chat).")
    environment: str
    direction: Literal["upgrade", "downgrade"]
    target: str
    reason: str
    status: Literal[
        "pending",
        "approved",
        "running",
        "unknown",
        "succeeded",
        "failed",
        "interrupted",
        "rejected",
        "cancelled",
        "stale",
    ]
    status_label: str
    status_note: str = Field(
        description="Why the request is in its status, in words (stale, reopened…); may be empty."
    )
    stale: str | None = Field(
        description='Why the request is stale ("the environment moved from X to Y after this was'
        ' requested"), or null. A stale request cannot be approved; request it again.'
    )
    requested_by: str
    created_at: datetime
    approved_at: datetime | None
    ended_at: datetime | None
    from_heads: list[str]
    to_heads: list[str]
    steps: list[PlanStepOut]
    sql_sha256: str
    destructive: bool
    required_approvals: int
    approvals_given: int = Field(description="Live (unexpired) approvals.")
    approvals: list[ApprovalOut]
    run: RunOut | None
    parent: int | None = Field(
        description="For a fleet target's run (a child request): the fleet's request; else null."
    )
    rollout: RolloutOut | None = Field(
        description="For a fleet's request: its rollout, wave by wave and target by target;"
        " null for a single environment's request (and for a child request)."
    )
