"""docker-compose.yml cannot be started here (no Docker engine), so check that
every service's command refers to modules, settings and files that exist."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]


def _command(service: str) -> list[str]:
    return SERVICES[service]["command"]


def test_it_has_the_production_shape() -> None:
    assert {
        "dashboard-db",
        "redis",
        "web",
        "worker",
        "worker-io",
        "beat",
        "staging-db",
        "production-db",
    } <= set(SERVICES)


def test_web_serves_the_wsgi_application_with_gunicorn() -> None:
    command = _command("web")
    assert command[0] == "gunicorn"
    module, attribute = command[1].split(":")
    assert callable(getattr(importlib.import_module(module), attribute))


def test_runs_are_served_by_processes_and_io_by_threads() -> None:
    """Every queue a task is routed to has a consumer, and the runs queue never a thread pool."""
    from django.conf import settings

    from dashboard.celery import RUN_TASKS, route_task

    runs, io = _command("worker"), _command("worker-io")
    assert runs[runs.index("-Q") + 1] == settings.DASHBOARD_RUNS_QUEUE
    assert io[io.index("-Q") + 1] == settings.DASHBOARD_IO_QUEUE
    assert "--pool=prefork" in runs and "--pool=threads" in io
    for name in RUN_TASKS:
        assert route_task(name, (), {}, {}) == {"queue": settings.DASHBOARD_RUNS_QUEUE}
    for name in ("environments.refresh", "approvals.notify_requester", "approvals.reap_lost_runs"):
        assert route_task(name, (), {}, {}) == {"queue": settings.DASHBOARD_IO_QUEUE}


def test_worker_and_beat_use_the_celery_app() -> None:
    for service, verb in [("worker", "worker"), ("worker-io", "worker"), ("beat", "beat")]:
        command = _command(service)
        assert command[:4] == ["celery", "-A", "dashboard", verb]
    from dashboard.celery import app

    assert app.main == "dashboard"


def test_every_dashboard_variable_is_one_the_settings_read() -> None:
    settings_source = (REPO_ROOT / "dashboard" / "settings.py").read_text()
    env = SERVICES["web"]["environment"]
    for name in env:
        if name.startswith("MAGNETIQ_"):
            continue  # target URLs, named by the environments file below
        assert f'"{name}"' in settings_source, f"{name} is not read by dashboard/settings.py"


def test_the_environments_file_names_the_target_variables_compose_sets() -> None:
    migrate = " ".join(_command("migrate"))
    toml_name = re.search(r"load_environments (\S+)", migrate).group(1)
    toml_text = (REPO_ROOT / toml_name).read_text()
    env = SERVICES["web"]["environment"]
    for variable in re.findall(r'url_env = "([A-Z_]+)"', toml_text):
        assert variable in env
        assert "@staging-db" in env[variable] or "@production-db" in env[variable]


def test_it_holds_no_password() -> None:
    text = (REPO_ROOT / "docker-compose.yml").read_text()
    for value in re.findall(r"PASSWORD: (.+)", text):
        assert value.strip().startswith("${"), value


def test_the_workers_scale_with_node_names_of_their_own() -> None:
    """`docker compose up --scale worker=4`: no fixed container name or host port, and a node
    name per container (each has its own hostname, ``%h``)."""
    for service in ("worker", "worker-io"):
        spec = SERVICES[service]
        assert "container_name" not in spec and "ports" not in spec, service
        command = spec["command"]
        assert command[command.index("-n") + 1].endswith("@%h"), service
