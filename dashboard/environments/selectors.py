"""Reads behind the environment pages, the overview and the CLI.

Contract: only reads the dashboard database (the cached status); never
resolves a secret or touches a target, so pages answer fast whatever the
targets do. Nothing here knows about requests or runs: the approvals app sits
above this one and composes its own reads (the request history of an
environment page, the last run kept on the row by its state machine).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from django.conf import settings
from django.core.paginator import Page, Paginator
from django.urls import reverse
from django.utils import timezone

from dashboard.environments.dispatch import QUEUED_READ_EXPIRES
from dashboard.environments.fleet import (
    SUMMARY_STATES,
    FleetSummary,
    fleet_summaries,
    heads_key,
    target_summary_state,
    wave_of_positions,
)
from dashboard.environments.fleet import (
    wave_ends as fleet_wave_ends,
)
from dashboard.environments.models import Environment

STATE_LABELS = dict(Environment.StatusState.choices)

# What an overview card shows. The drift comparison itself (operations, the
# autogenerate draft: kilobytes per row) and the configuration stay in the
# database; the card reads the denormalised drift_state/drift_count instead.
CARD_FIELDS = (
    "slug",
    "is_fleet",
    "name",
    "position",
    "status_state",
    "current_heads",
    "pending",
    "status_error",
    "status_refreshed_at",
    "status_detail",
    "drift_state",
    "drift_count",
    "last_run_outcome",
    "last_run_started_at",
    "last_run_request_id",
)


def environments_for_pipeline() -> list[Environment]:
    """Every environment in pipeline order, card fields only; targets are not cards.

    A fleet carries ``fleet_summary`` (``fleet.FleetSummary``: its targets
    per state and head set). Two queries whatever the number of environments
    and of targets.
    """
    environments = list(
        Environment.objects.pipeline().only(*CARD_FIELDS).order_by("position", "name")
    )
    summaries = fleet_summaries(env.pk for env in environments if env.is_fleet)
    describe_head_sets(summaries.values())
    for env in environments:
        env.fleet_summary = summaries.get(env.pk)  # type: ignore[attr-defined]
    return environments


def revision_messages(revisions: Iterable[str]) -> dict[str, str]:
    """The message of each revision, from the revision files (no query; the graph is cached)."""
    from dashboard.migrator.graph import load_revision_graph

    wanted = set(revisions)
    if not wanted:
        return {}
    graph = load_revision_graph(config_path=settings.ALEMBIC_CONFIG)
    return {info.id: info.message for info in graph.revisions if info.id in wanted}


def describe_head_sets(summaries: Iterable[FleetSummary]) -> None:
    """Add ``described`` ([(head, message)]) to each head set, so no page shows bare hashes."""
    summaries = list(summaries)
    heads = {head for summary in summaries for item in summary.head_sets for head in item["heads"]}
    messages = revision_messages(heads)
    for summary in summaries:
        for item in summary.head_sets:
            item["described"] = [(head, messages.get(head, "")) for head in item["heads"]]


def overview_context(*, user: Any) -> dict[str, Any]:
    """Context of the overview page (``dashboard:overview``): the pipeline side by side."""
    if not user.has_perm("environments.view_environment"):
        return {"environments": [], "environments_hidden": True}
    return {"environments": environments_for_pipeline()}


def environment_get(*, slug: str) -> Environment:
    """The environment with this slug, a target with its fleet (raises ``DoesNotExist``)."""
    return Environment.objects.select_related("fleet").get(slug=slug)


FirstRead = Literal["", "queued", "not_queued"]


def environment_first_read_state(environment: Environment) -> FirstRead:
    """Where a never-read environment's first read stands; ``""`` once it was read.

    ``"queued"``: a read was queued less than ``QUEUED_READ_EXPIRES`` ago (the
    page polls); ``"not_queued"``: nothing is queued, or the message was lost.
    """
    never_read = (
        environment.status_refreshed_at is None
        and environment.status_state == Environment.StatusState.UNKNOWN
    )
    if not never_read:
        return ""
    queued = environment.status_refresh_queued_at
    if queued is not None and timezone.now() - queued < QUEUED_READ_EXPIRES:
        return "queued"
    return "not_queued"


def environment_status_row(environment: Environment) -> dict[str, Any]:
    """The CLI/JSON form of one environment's cached status."""
    drift = environment.drift or None
    return {
        "slug": environment.slug,
        "name": environment.name,
        "state": environment.status_state,
        "current_heads": list(environment.current_heads or []),
        "pending": list(environment.pending or []),
        "error": environment.status_error or None,
        "drift": drift.get("operations") if drift else None,
        "refreshed_at": (
            environment.status_refreshed_at.isoformat() if environment.status_refreshed_at else None
        ),
    }


def environment_status_rows(*, environments: Iterable[Environment]) -> list[dict[str, Any]]:
    return [environment_status_row(env) for env in environments]


# --- fleets -------------------------------------------------------------------

SUMMARY_LABELS = {
    "up_to_date": "Up to date",
    "pending": "Pending",
    "drifted": "Drifted",
    "unreachable": "Unreachable",
    "unknown": "Not read yet",
}
# The CSS tone of each bucket (the dash-badge classes).
SUMMARY_TONES = {
    "up_to_date": "ok",
    "pending": "warn",
    "drifted": "danger",
    "unreachable": "danger",
    "unknown": "",
}
TARGETS_PER_PAGE = 50
# The revision filter's value for targets whose heads were not read.
NO_HEADS = "none"
_GRID_FIELDS = (
    "slug",
    "target_name",
    "status_state",
    "drift_state",
    "drift_count",
    "current_heads",
    "pending",
    "status_error",
    "status_refreshed_at",
    "status_refresh_queued_at",
)


@dataclass
class TargetRow:
    """One target of the fleet page's grid (from the cached status only)."""

    slug: str
    name: str
    number: int  # 1-based place in the rollout order
    wave: int
    state: str
    state_label: str
    bucket: str  # fleet.SUMMARY_STATES
    heads: tuple[str, ...]
    pending: int
    error: str
    drift_count: int
    refreshed_at: datetime | None
    queued: bool
    url: str
    match: bool = True  # passes the page's filters (the map dims the others)

    @property
    def badge_label(self) -> str:
        """The row's state in words: the exact status, or "Drifted" over "Up to date"."""
        return SUMMARY_LABELS["drifted"] if self.bucket == "drifted" else self.state_label

    @property
    def tone(self) -> str:
        return SUMMARY_TONES[self.bucket]

    @property
    def heads_value(self) -> str:
        return "+".join(self.heads) or NO_HEADS


@dataclass
class FleetGrid:
    """What the fleet page shows: the summary, every target (the map) and one page of the table."""

    summary: FleetSummary
    targets: list[TargetRow]
    page: Page
    matching: int
    state: str = ""
    revision: str = ""
    name: str = ""
    # (filter value, targets, label): every distinct head set among the targets.
    head_set_choices: list[tuple[str, int, str]] = field(default_factory=list)
    wave_ends: list[int] = field(default_factory=list)
    page_range: list[int | str] = field(default_factory=list)

    @property
    def filtered(self) -> bool:
        return bool(self.state or self.revision or self.name)

    @property
    def reads_queued(self) -> int:
        return sum(1 for row in self.targets if row.queued)

    @property
    def state_choices(self) -> list[tuple[str, str, int, str]]:
        return summary_counts(self.summary)


def summary_counts(summary: FleetSummary) -> list[tuple[str, str, int, str]]:
    """(state, label, targets, tone) of each summary state, in ``SUMMARY_STATES`` order."""
    return [
        (state, SUMMARY_LABELS[state], summary.states.get(state, 0), SUMMARY_TONES[state])
        for state in SUMMARY_STATES
    ]


def fleet_grid(
    *, fleet: Environment, state: str = "", revision: str = "", name: str = "", page: Any = 1
) -> FleetGrid:
    """The fleet page's data in two queries whatever the number of targets.

    One query for the summary (``fleet_summaries``), one for the few status
    columns of every current target (a few hundred bytes each). Filtering by
    state bucket, exact head set (``revision``: heads joined by ``+``, or
    ``"none"``) and name substring happens here, in Python: the same on
    SQLite and PostgreSQL, whose JSON lookups differ, and it also feeds the
    map of all targets. ``page`` is paginated by ``TARGETS_PER_PAGE``.
    """
    summary = fleet_summaries([fleet.pk])[fleet.pk]
    describe_head_sets([summary])
    values = Environment.objects.targets_of(fleet).values_list(*_GRID_FIELDS)
    rows = list(values)
    waves = wave_of_positions(fleet.waves or ["100%"], len(rows))
    now = timezone.now()
    targets = [
        _target_row(number, wave, row, now)
        for number, (wave, row) in enumerate(zip(waves, rows, strict=True), start=1)
    ]
    head_sets: dict[str, int] = {}
    for row in targets:
        head_sets[row.heads_value] = head_sets.get(row.heads_value, 0) + 1
    needle = name.strip().lower()
    for row in targets:
        row.match = (
            (not state or row.bucket == state)
            and (not revision or row.heads_value == revision)
            and (not needle or needle in row.name.lower())
        )
    matching = [row for row in targets if row.match]
    paginator = Paginator(matching, TARGETS_PER_PAGE)
    shown = paginator.get_page(page)
    return FleetGrid(
        summary=summary,
        targets=targets,
        page=shown,
        matching=len(matching),
        state=state,
        revision=revision,
        name=name.strip(),
        head_set_choices=_head_set_choices(head_sets),
        wave_ends=fleet_wave_ends(fleet.waves or ["100%"], len(rows)),
        page_range=list(paginator.get_elided_page_range(shown.number, on_each_side=2, on_ends=1)),
    )


def _head_set_choices(counts: dict[str, int]) -> list[tuple[str, int, str]]:
    messages = revision_messages(head for value in counts for head in value.split("+"))

    def label(value: str) -> str:
        if value == NO_HEADS:
            return "none read"
        heads = value.split("+")
        if len(heads) == 1:
            return f"{value} {messages.get(value, '')}".strip()
        return " + ".join(heads)

    ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return [(value, count, label(value)) for value, count in ordered]


def _target_row(number: int, wave: int, row: tuple[Any, ...], now: datetime) -> TargetRow:
    slug, name, state, drift_state, drift_count, heads, pending, error, read, queued = row
    return TargetRow(
        slug=slug,
        name=name,
        number=number,
        wave=wave,
        state=state,
        state_label=STATE_LABELS.get(state, state),
        bucket=target_summary_state(state, drift_state),
        heads=heads_key(heads),
        pending=len(pending or ()),
        error=error,
        drift_count=drift_count if drift_state == "drift" else 0,
        refreshed_at=read,
        queued=queued is not None and now - queued < QUEUED_READ_EXPIRES,
        url=reverse("environments:detail", args=[slug]),
    )


def status_report(*, environments: Iterable[Environment]) -> list[dict[str, Any]]:
    """``environment_status --json``: one row per environment, a fleet with its targets.

    A single environment (or a target named alone) is ``environment_status_row``;
    a fleet is ``{"slug", "name", "fleet": {"targets", "summary"}, "targets": [rows]}``
    with one row of the same fields per current target, in rollout order. Three
    queries whatever the number of targets (these, their targets, the summaries).
    """
    listed = list(environments)
    fleet_ids = [env.pk for env in listed if env.is_fleet]
    targets: dict[int, list[Environment]] = {pk: [] for pk in fleet_ids}
    if fleet_ids:
        rows = Environment.objects.filter(fleet_id__in=fleet_ids, retired_at__isnull=True)
        for target in rows.order_by("fleet_position", "pk"):
            targets[target.fleet_id].append(target)  # type: ignore[index]
    summaries = fleet_summaries(fleet_ids)
    report = []
    for env in listed:
        if not env.is_fleet:
            report.append(environment_status_row(env))
            continue
        summary = summaries[env.pk].as_dict()
        report.append(
            {
                "slug": env.slug,
                "name": env.name,
                "fleet": {"targets": summary.pop("targets"), "summary": summary},
                "targets": environment_status_rows(environments=targets[env.pk]),
            }
        )
    return report
