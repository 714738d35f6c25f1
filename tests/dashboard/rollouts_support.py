"""Helpers for fleet rollout tests: fleets declared through the TOML loader, waiting on rollouts."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tests.dashboard.approvals_support import wait_for

ROLLOUT_TIMEOUT = 120


def make_fleet(
    *,
    slug: str,
    names: Sequence[str],
    url_template: str,
    directory: Path,
    waves: Sequence[int | str] = ("100%",),
    parallelism: int = 4,
    halt_after_failures: int = 1,
    required_approvals: int = 2,
    extra: str = "",
) -> Any:
    """Declare a fleet in a TOML file and load it, as a team would (``load_environments``)."""
    from dashboard.environments.config_file import environments_load
    from dashboard.environments.models import Environment

    url_file = directory / f"{slug}-{uuid.uuid4().hex[:6]}.url"
    url_file.write_text(url_template)
    waves_toml = ", ".join(f'"{w}"' if isinstance(w, str) else str(w) for w in waves)
    names_toml = ", ".join(f'"{n}"' for n in names)
    toml = directory / f"{slug}.toml"
    toml.write_text(
        f"""
[environments.{slug}]
name = "{slug.title()}"
position = 4
url_file = "{url_file}"
targets = [{names_toml}]
waves = [{waves_toml}]
parallelism = {parallelism}
halt_after_failures = {halt_after_failures}
required_approvals = {required_approvals}
approver_group = "Tech leads"
lock_wait = "10s"
{extra}
"""
    )
    environments_load(path=toml)
    return Environment.objects.get(slug=slug)


def refresh_targets(fleet: Any) -> None:
    """Read every target's status now (what beat's refresh does), in this process."""
    from dashboard.environments.models import Environment
    from dashboard.environments.services import environments_refresh_all

    environments_refresh_all(environments=list(Environment.objects.targets_of(fleet)))


def rollout_in(request: Any, *states: str, timeout: float = ROLLOUT_TIMEOUT) -> Any:
    """Wait until the request's rollout is in one of ``states``; return it."""
    from dashboard.rollouts.models import Rollout

    def check() -> Any:
        rollout = Rollout.objects.filter(request_id=request.pk).first()
        return rollout if rollout is not None and rollout.state in states else None

    return wait_for(check, timeout=timeout, interval=0.25)


def target_states(rollout: Any) -> dict[str, str]:
    return dict(rollout.targets.order_by("position").values_list("name", "state"))
