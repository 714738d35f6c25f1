"""Fleets: many databases of one schema (tenants, shards, regions) behind one environment.

A fleet is declared in the environments TOML with ``targets`` (or
``targets_file``), a URL template containing ``{target}`` and its rollout
policy (``waves``, ``parallelism``, ``halt_after_failures``, ``soak``,
``gate_sql``). Each target is an ``Environment`` row of its own (slug
``<fleet>--<target>``), so a target is read, locked, run and audited exactly
like a single environment; this module holds what is about the fleet as a
whole: target names, wave sizes, and the summary the overview shows, read in
a constant number of queries whatever the number of targets.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from dashboard.environments.models import Environment

TARGET_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
TARGET_NAME_MAX = 100
WAVE_PERCENT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%\s*$")
# Every target of a fleet falls into one of these on the overview card.
SUMMARY_STATES = ("up_to_date", "pending", "drifted", "unreachable", "unknown")


class FleetSpecError(ValueError):
    """A fleet's targets or waves are malformed; the message says which and why."""


def target_name_problem(name: object) -> str | None:
    """Why ``name`` is not a valid target name, or None."""
    if not isinstance(name, str) or not name:
        return "a target name must be a non-empty string"
    if len(name) > TARGET_NAME_MAX:
        return f"target name {name[:20]!r}… is longer than {TARGET_NAME_MAX} characters"
    if not TARGET_NAME.match(name):
        return f"target name {name!r} may only contain letters, digits, _ and -"
    return None


def parse_targets_file(text: str, *, path: str) -> list[str]:
    """One target name a line; blank lines and ``#`` comments ignored. Errors name the line."""
    names: list[str] = []
    seen: dict[str, int] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        name = raw.split("#", 1)[0].strip()
        if not name:
            continue
        problem = target_name_problem(name)
        if problem:
            raise FleetSpecError(f"{path}, line {number}: {problem}")
        if name in seen:
            raise FleetSpecError(
                f"{path}, line {number}: target {name!r} is listed twice (first on line {seen[name]})"
            )
        seen[name] = number
        names.append(name)
    if not names:
        raise FleetSpecError(f"{path}: no target names in the file (one name a line)")
    return names


def validate_waves(waves: object) -> list[int | str]:
    """The ``waves`` list as declared (ints ≥ 1 or "N%" with 0 < N ≤ 100), cumulative, increasing."""
    if not isinstance(waves, list) or not waves:
        raise FleetSpecError('waves must be a non-empty list such as [1, "10%", "100%"]')
    out: list[int | str] = []
    for wave in waves:
        if isinstance(wave, bool):
            raise FleetSpecError(f"wave {wave!r} must be a number of targets or a percentage")
        if isinstance(wave, int):
            if wave < 1:
                raise FleetSpecError(f"wave {wave} must be at least 1 target")
            out.append(wave)
            continue
        match = WAVE_PERCENT.match(wave) if isinstance(wave, str) else None
        if match is None or not 0 < float(match.group(1)) <= 100:
            raise FleetSpecError(
                f'wave {wave!r} must be a number of targets (1) or a percentage ("10%")'
            )
        out.append(f"{match.group(1)}%")
    return out


def wave_ends(waves: Sequence[int | str], total: int) -> list[int]:
    """Cumulative end index of each non-empty wave over ``total`` targets; the last is ``total``.

    ``[1, "10%", "100%"]`` over 200 targets is ``[1, 20, 200]``; a wave that
    adds nobody (``"10%"`` of 5 targets after a canary of 1) is dropped; a
    list that stops short of every target gets a last wave with the rest.
    """
    ends: list[int] = []
    for wave in waves:
        if isinstance(wave, int):
            end = wave
        else:
            end = math.ceil(total * float(str(wave).rstrip("%")) / 100)
        end = min(end, total)
        if end > (ends[-1] if ends else 0):
            ends.append(end)
    if total and (not ends or ends[-1] < total):
        ends.append(total)
    return ends


def wave_of_positions(waves: Sequence[int | str], total: int) -> list[int]:
    """The wave number (1-based) of each of ``total`` targets in rollout order."""
    numbers: list[int] = []
    start = 0
    for number, end in enumerate(wave_ends(waves, total), start=1):
        numbers += [number] * (end - start)
        start = end
    return numbers


def heads_key(heads: Iterable[str] | None) -> tuple[str, ...]:
    return tuple(sorted(heads or ()))


def target_summary_state(status_state: str, drift_state: str) -> str:
    """The overview bucket of one target: drift shows over pending, unreadable over all."""
    if status_state in ("unreachable", "no_version_table", "unknown_revision"):
        return "unreachable"
    if status_state == Environment.StatusState.UNKNOWN:
        return "unknown"
    if drift_state == "drift":  # the row's drift_state (drift_summary): "drift", "clean", ...
        return "drifted"
    return "pending" if status_state == Environment.StatusState.PENDING else "up_to_date"


@dataclass
class FleetSummary:
    """What the overview card and ``environment_status --json`` say about a fleet as a whole."""

    targets: int = 0
    states: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SUMMARY_STATES, 0))
    head_sets: list[dict[str, Any]] = field(default_factory=list)
    oldest_read: Any = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "targets": self.targets,
            "states": self.states,
            "head_sets": self.head_sets,
            "oldest_read": self.oldest_read.isoformat() if self.oldest_read else None,
        }


def fleet_summaries(fleet_ids: Iterable[int]) -> dict[int, FleetSummary]:
    """One summary per fleet, in one query over all their targets (constant in their number)."""
    ids = list(fleet_ids)
    summaries = {pk: FleetSummary() for pk in ids}
    if not ids:
        return summaries
    rows = (
        Environment.objects.filter(fleet_id__in=ids, retired_at__isnull=True)
        .values_list(
            "fleet_id", "status_state", "drift_state", "current_heads", "status_refreshed_at"
        )
        .iterator(chunk_size=2000)
    )
    head_counts: dict[int, Counter[tuple[str, ...]]] = defaultdict(Counter)
    for fleet_id, state, drift_state, heads, refreshed in rows:
        summary = summaries[fleet_id]
        summary.targets += 1
        summary.states[target_summary_state(state, drift_state)] += 1
        if state in (Environment.StatusState.UP_TO_DATE, Environment.StatusState.PENDING):
            head_counts[fleet_id][heads_key(heads)] += 1
        if refreshed is None or summary.oldest_read is None or refreshed < summary.oldest_read:
            summary.oldest_read = refreshed if refreshed is not None else summary.oldest_read
    for fleet_id, counts in head_counts.items():
        summaries[fleet_id].head_sets = [
            {"heads": list(key), "targets": count} for key, count in counts.most_common()
        ]
    return summaries
