"""What a tech lead does to a rollout: resume a halted one, cancel the rest, proceed past a soak.

Every action checks the permission here (views and the API call these and
turn ``PermissionDenied`` into 403), is audited, and steps the rollout on a
worker after the commit. A resume is refused when any pinned revision file
or env.py changed since approval: the approved plan must be what runs.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from dashboard.approvals import transitions as request_transitions
from dashboard.approvals.planning import alembic_config
from dashboard.approvals.services.recovery import run_cancel_refusal
from dashboard.migrator.pinned import PinMismatch, load_pinned_script
from dashboard.rollouts import transitions
from dashboard.rollouts.models import Rollout, RolloutTarget
from dashboard.rollouts.services.scheduler import (
    rollout_kick_on_commit,
    state_counts,
    targets_read_on_commit,
    targets_sync,
)

Target = RolloutTarget.State


class RolloutActionRefused(Exception):
    """The action does not apply to the rollout now; the message says why (HTTP 409)."""


_STATE_WORDS = {
    Rollout.State.PENDING: "is waiting for approval",
    Rollout.State.RUNNING: "is running",
    Rollout.State.SOAKING: "is soaking",
    Rollout.State.HALTED: "has halted",
    Rollout.State.SUCCEEDED: "has succeeded",
    Rollout.State.CANCELLED: "was cancelled",
}


def state_words(rollout: Rollout) -> str:
    """ "is running", "has succeeded"…: the rollout's state in a sentence."""
    return _STATE_WORDS.get(rollout.state, f"is {rollout.state}")


def rollout_action_refusal(*, rollout: Rollout, user: Any) -> str | None:
    """Why ``user`` may not resume, cancel or hurry this rollout, or None (the fleet's leads).

    The same people as those who cancel a run (``run_cancel_refusal``), said
    in the rollout's words.
    """
    if run_cancel_refusal(request=rollout.request, user=user) is None:
        return None
    fleet = rollout.request.environment
    if not user.has_perm("dashboard.approve_migration"):
        return "only a tech lead may resume, cancel or hurry a rollout"
    return f"only members of {fleet.approver_group} resume, cancel or hurry rollouts of {fleet}"


def _check(rollout: Rollout, user: Any) -> Rollout:
    refusal = rollout_action_refusal(rollout=rollout, user=user)
    if refusal:
        raise PermissionDenied(refusal)
    # Lock the rollout row alone, then read it and its request as they are now.
    Rollout.objects.select_for_update().filter(pk=rollout.pk).values_list("pk", flat=True).get()
    locked = Rollout.objects.select_related("request__environment").get(pk=rollout.pk)
    targets_sync(locked)
    return locked


def files_changed(rollout: Rollout) -> str | None:
    """The pinned files that changed since approval (their paths, comma-separated), or None."""
    hashes: dict[str, str] = {}
    paths: dict[str, str] = {}
    for plan in rollout.plans.all():
        hashes |= {step["revision"]: step["sha256"] for step in plan.steps}
        paths |= {
            step["revision"]: f"{step['path']} (revision {step['revision']})" for step in plan.steps
        }
    try:
        load_pinned_script(
            alembic_config(),
            revision_hashes=hashes,
            env_sha256=rollout.request.env_sha256 or None,
        )
    except PinMismatch as exc:
        return ", ".join(paths.get(name, name) for name in exc.changed)
    return None


def rollout_resume(*, rollout: Rollout, actor: Any, http_request: HttpRequest | None = None) -> int:
    """Retry the halted rollout's failed targets, then go on with the waves; returns how many.

    Failed and interrupted targets go back to pending (a new child request
    each, with the same pinned plan; their earlier attempts stay as history),
    a failed gate is read again. Refused when the files changed since approval.
    """
    with transaction.atomic():
        locked = _check(rollout, actor)
        if locked.state != Rollout.State.HALTED:
            raise RolloutActionRefused(
                f"the rollout {state_words(locked)}; only a halted one resumes"
            )
        changed = files_changed(locked)
        if changed:
            raise RolloutActionRefused(
                f"the files changed since this was approved ({changed}); the approved plan can no"
                " longer run: cancel this rollout and request the fleet again"
            )
        failed = list(
            locked.targets.filter(state__in=RolloutTarget.FAILURES).values_list(
                "pk", "wave", "name"
            )
        )
        gated = list(locked.targets.filter(gate_passed=False).values_list("pk", "wave", "name"))
        waves = [wave for _, wave, _ in failed + gated]
        wave = min(waves) if waves else locked.current_wave
        locked.targets.filter(pk__in=[pk for pk, _, _ in failed]).update(
            state=Target.PENDING, error="", gate_passed=None, finished_at=None
        )
        locked.targets.filter(pk__in=[pk for pk, _, _ in gated]).update(gate_passed=None, error="")
        names = sorted({name for _, _, name in failed + gated})
        transitions.rollout_resumed(
            locked, actor=actor, http_request=http_request, wave=wave, retried=names
        )
        rollout_kick_on_commit(rollout_id=locked.pk)
    rollout.refresh_from_db()
    return len(names)


def rollout_cancel(
    *, rollout: Rollout, actor: Any, http_request: HttpRequest | None = None
) -> dict[str, int]:
    """Cancel the rest: targets not started are skipped; running ones finish (audited).

    Targets already queued but not claimed by a worker are withdrawn; a target
    whose run started finishes and is recorded (a migration is never stopped
    half-way by this; a run can be cancelled on its own page).
    """
    with transaction.atomic():
        locked = _check(rollout, actor)
        if locked.state in Rollout.ENDED_STATES:
            raise RolloutActionRefused(f"the rollout {state_words(locked)}")
        note = f"cancelled by {actor.get_username()}"
        queued = locked.targets.filter(state=Target.QUEUED).select_related("request")
        for row in queued:
            if row.request is not None and request_transitions.child_request_abandoned(
                row.request, note=note
            ):
                RolloutTarget.objects.filter(pk=row.pk).update(
                    state=Target.SKIPPED, error=note, finished_at=timezone.now()
                )
        locked.targets.filter(state=Target.PENDING).update(
            state=Target.SKIPPED, error=note, finished_at=timezone.now()
        )
        summary = state_counts(locked)
        transitions.rollout_cancelled(
            locked, actor=actor, http_request=http_request, summary=summary
        )
        targets_read_on_commit(locked)
    rollout.refresh_from_db()
    return summary


def rollout_proceed(
    *, rollout: Rollout, actor: Any, http_request: HttpRequest | None = None
) -> None:
    """End the current soak now and start the next wave (audited as "proceeded")."""
    with transaction.atomic():
        locked = _check(rollout, actor)
        if locked.state != Rollout.State.SOAKING:
            raise RolloutActionRefused("the rollout is not soaking: there is nothing to skip")
        transitions.soak_ended(locked, actor=actor, http_request=http_request)
        rollout_kick_on_commit(rollout_id=locked.pk)
    rollout.refresh_from_db()
