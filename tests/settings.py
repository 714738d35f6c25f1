"""Settings for the test suite: the product's settings with test defaults.

Defaults are put in the process environment (so worker subprocesses that the
tests start inherit them) before ``dashboard.settings`` reads it. The dashboard's
own test database is PostgreSQL at ``TEST_POSTGRES_URL``, under a name unique to
this run so parallel runs never collide.
"""

import os
import uuid

from sqlalchemy.engine import make_url

_pg = make_url(
    os.environ.setdefault(
        "TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
    )
)
os.environ.setdefault("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
os.environ.setdefault("DASHBOARD_TEST_DB_NAME", f"test_dashboard_{uuid.uuid4().hex[:10]}")
os.environ.setdefault(
    "DASHBOARD_DATABASE_URL",
    _pg.set(drivername="postgresql", database="dashboard").render_as_string(hide_password=False),
)
os.environ.setdefault("DJANGO_SECRET_KEY", "test-only-secret-key-not-for-production")
os.environ.setdefault("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,testserver")
os.environ.setdefault("DJANGO_SECURE_COOKIES", "0")
# Mail stays in memory unless a test's worker process is given a real backend.
os.environ.setdefault("DJANGO_EMAIL_BACKEND", "django.core.mail.backends.locmem.EmailBackend")
os.environ.setdefault(
    "DASHBOARD_VAR_DIR", f"/tmp/dashboard-test-var-{os.environ['DASHBOARD_TEST_DB_NAME']}"
)

from dashboard.settings import *  # noqa: E402,F403
from dashboard.settings import DATABASES  # noqa: E402

DATABASES["default"]["TEST"] = {"NAME": os.environ["DASHBOARD_TEST_DB_NAME"]}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast; tests only
# The audit log's trigger refuses TRUNCATE unless the session sets this; Django
# flushes tables with TRUNCATE after transactional tests (see audit migration 0002).
DATABASES["default"].setdefault("OPTIONS", {})["options"] = "-c dashboard.audit_allow_truncate=on"
