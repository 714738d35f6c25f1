"""Shared fixtures: throw-away target databases, people in each role, Chromium.

Real services only: PostgreSQL at ``TEST_POSTGRES_URL`` and Redis at
``TEST_REDIS_URL`` (defaults in ``tests/settings.py``). Every database a test
creates has a unique name and is dropped afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import URL, make_url

REPO_ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO_ROOT / "test-artifacts"
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
]


# --- target databases ---------------------------------------------------------


def _admin_url() -> URL:
    return make_url(os.environ["TEST_POSTGRES_URL"])


def _libpq(url: URL) -> str:
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def create_postgres_database(prefix: str = "t") -> str:
    """Create an empty database; return its SQLAlchemy URL (``postgresql+psycopg://``)."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = _admin_url()
    with psycopg.connect(_libpq(admin), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return admin.set(drivername="postgresql+psycopg", database=name).render_as_string(
        hide_password=False
    )


def drop_postgres_database(url: str) -> None:
    name = make_url(url).database
    with psycopg.connect(_libpq(_admin_url()), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def make_postgres_url() -> Iterator[Callable[[], str]]:
    """Factory of fresh PostgreSQL databases, all dropped at teardown."""
    created: list[str] = []

    def make(prefix: str = "t") -> str:
        url = create_postgres_database(prefix)
        created.append(url)
        return url

    yield make
    for url in created:
        drop_postgres_database(url)


@pytest.fixture
def postgres_url(make_postgres_url: Callable[[], str]) -> str:
    """One fresh, empty PostgreSQL database (SQLAlchemy URL, psycopg 3 driver)."""
    return make_postgres_url()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A fresh SQLite file's SQLAlchemy URL (the file does not exist yet)."""
    return f"sqlite:///{tmp_path / 'target.sqlite3'}"


@pytest.fixture(params=["postgresql", "sqlite"])
def target_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh target database, once on PostgreSQL and once on SQLite."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'target.sqlite3'}"
        return
    url = create_postgres_database("target")
    yield url
    drop_postgres_database(url)


# --- Celery -------------------------------------------------------------------


@pytest.fixture
def eager_celery() -> Iterator[None]:
    """Run tasks sent by name in this process (unit tests of what a task does).

    Never the only test of execution: worker tests start real worker processes.
    """
    from dashboard.celery import app

    before = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = before


# --- people -------------------------------------------------------------------


@pytest.fixture
def make_user(db: None) -> Callable[..., object]:
    """``make_user("alice", "Tech leads")``: a staff user (password ``pw``) in those groups."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    def make(username: str, *groups: str, superuser: bool = False) -> object:
        from dashboard.audit.access_signals import suppressed

        # Set-up, not behaviour under test: keep the audit log to what the test does.
        with suppressed():
            user = get_user_model().objects.create_user(
                username=username,
                email=f"{username}@example.com",
                password="pw",
                is_staff=True,
                is_superuser=superuser,
            )
            user.groups.set([Group.objects.get(name=name) for name in groups])
        return user

    return make


@pytest.fixture
def developer(make_user: Callable[..., object]) -> object:
    return make_user("developer", "Developers")


@pytest.fixture
def lead(make_user: Callable[..., object]) -> object:
    return make_user("lead", "Tech leads")


@pytest.fixture
def lead2(make_user: Callable[..., object]) -> object:
    return make_user("lead2", "Tech leads")


@pytest.fixture
def auditor(make_user: Callable[..., object]) -> object:
    return make_user("auditor", "Auditors")


@pytest.fixture
def outsider(make_user: Callable[..., object]) -> object:
    """A staff user in no group: may log in, may see nothing of the product."""
    return make_user("outsider")


# --- browser ------------------------------------------------------------------


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    """Debian's Chromium driven by Playwright. Missing browser = failure, not skip."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: apt-get install -y chromium")
    # Playwright's sync API runs an event loop in this thread; Django's
    # async-safety check would refuse ORM calls made by the test itself.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: object) -> Iterator[object]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})  # type: ignore[attr-defined]
    context.set_default_timeout(15_000)
    page = context.new_page()
    yield page
    context.close()


def save_screenshot(page: object, name: str) -> Path:
    """Save what the user saw under test-artifacts/ (ignored by git)."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)  # type: ignore[attr-defined]
    return path


def browser_login(page: object, base_url: str, username: str, password: str = "pw") -> None:
    """Log in through the admin login form, as a person would."""
    page.goto(f"{base_url}/admin/login/?next=/")  # type: ignore[attr-defined]
    page.fill("#id_username", username)  # type: ignore[attr-defined]
    page.fill("#id_password", password)  # type: ignore[attr-defined]
    page.click("input[type=submit]")  # type: ignore[attr-defined]
    page.wait_for_load_state()  # type: ignore[attr-defined]
