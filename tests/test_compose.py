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
    assert {"dashboard-db", "redis", "web", "worker", "beat", "staging-db", "production-db"} <= set(
        SERVICES
    )


def test_web_serves_the_wsgi_application_with_gunicorn() -> None:
    command = _command("web")
    assert command[0] == "gunicorn"
    module, attribute = command[1].split(":")
    assert callable(getattr(importlib.import_module(module), attribute))


def test_worker_and_beat_use_the_celery_app() -> None:
    for service, verb in [("worker", "worker"), ("beat", "beat")]:
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
