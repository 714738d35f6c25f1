"""Settings of the migrations dashboard, read from environment variables.

Every variable is documented in README ("Configuration"). Values are parsed by
the strict helpers in ``dashboard.env``: a malformed value stops start-up with
a message naming the variable. Defaults are the embedded demo set-up: SQLite
for the dashboard's own database and Celery's filesystem transport, both under
``var/``.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from dashboard.env import (
    env_bool,
    env_database,
    env_duration,
    env_int,
    env_list,
    env_path,
    env_str,
)

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = env_path("DASHBOARD_VAR_DIR", BASE_DIR / "var")

DEBUG = env_bool("DJANGO_DEBUG", False)
SECRET_KEY = env_str("DJANGO_SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY must be set when DJANGO_DEBUG is off "
            "(set DJANGO_DEBUG=1 for local development)."
        )
    SECRET_KEY = "insecure-development-key-only-used-with-DJANGO_DEBUG"  # noqa: S105

ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["127.0.0.1", "localhost"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "template_partials",
    "dashboard",
    "dashboard.environments",
    "dashboard.graph",
    "dashboard.audit",
    "dashboard.approvals",
    "dashboard.rollouts",
    "dashboard.api",
    "axes",
    "ninja",  # django-ninja: serves the API docs page from static files (CSP)
    # -- apps added by feature work go above this line --
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "dashboard.audit.access_signals.CurrentRequestMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "csp.middleware.CSPMiddleware",
    # AxesMiddleware must stay last: it turns a lockout into the lockout page.
    "axes.middleware.AxesMiddleware",
    # -- middleware added by feature work goes above this line --
]

ROOT_URLCONF = "dashboard.urls"
WSGI_APPLICATION = "dashboard.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    }
]

# Persistent connections: a new PostgreSQL backend per request cost ~13 ms of
# server CPU per page under load (docs/benchmarks.md, load test).
DATABASES = {
    "default": env_database(
        "DASHBOARD_DATABASE_URL",
        f"sqlite:///{VAR_DIR / 'dashboard.sqlite3'}",
        conn_max_age=env_int("DASHBOARD_DB_CONN_MAX_AGE", 60, minimum=0),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the web process read while a worker writes; IMMEDIATE takes the
    # write lock at BEGIN, which serialises writers (the audit hash chain
    # relies on it) instead of failing with "database is locked" mid-way.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
else:
    DATABASES["default"].setdefault("OPTIONS", {})["connect_timeout"] = 5
DATABASES["default"]["ATOMIC_REQUESTS"] = False
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LOGIN_URL = "admin:login"
LOGIN_REDIRECT_URL = "dashboard:overview"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("DJANGO_TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = env_path("DJANGO_STATIC_ROOT", BASE_DIR / "staticfiles")

# --- The Alembic project the dashboard shows and runs -----------------------
ALEMBIC_CONFIG = str(env_path("ALEMBIC_CONFIG", BASE_DIR / "alembic.ini"))

# --- Celery (the CELERY_ namespace is read by dashboard/celery.py) ----------
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "filesystem://")
CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {}
if CELERY_BROKER_URL == "filesystem://":
    _broker_dir = VAR_DIR / "broker"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_BROKER_CONNECTION_TIMEOUT = 3
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_DEFAULT_QUEUE = env_str("CELERY_TASK_DEFAULT_QUEUE", "dashboard")
# Two queues (docs/operations.md, "Queues"): migrations on `runs`, served by
# prefork or solo workers only (Alembic's op/context proxies are process-global,
# two runs in threads of one process cross-wire); status reads, mail, the
# reaper and other short I/O on `io`, which may use a thread pool.
DASHBOARD_RUNS_QUEUE = env_str("DASHBOARD_RUNS_QUEUE", "runs")
DASHBOARD_IO_QUEUE = env_str("DASHBOARD_IO_QUEUE", "io")
CELERY_TASK_ROUTES = ("dashboard.celery.route_task",)
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
# Early acknowledgement (Celery's default): a killed worker's message is not
# redelivered; the reaper marks its run interrupted instead.
CELERY_TASK_ACKS_LATE = False
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
CELERY_BEAT_SCHEDULE: dict[str, dict[str, object]] = {
    # -- beat entries added by feature work go below this line --
    "environments-refresh-every-minute": {
        "task": "environments.refresh_all",
        "schedule": timedelta(minutes=1),
    },
    "approvals-reap-lost-runs": {"task": "approvals.reap_lost_runs", "schedule": 2.0},
    "approvals-redispatch-approved": {"task": "approvals.redispatch_approved", "schedule": 30.0},
    "approvals-expire-approvals": {"task": "approvals.expire_approvals", "schedule": 300.0},
    "rollouts-tick": {"task": "rollouts.tick", "schedule": 3.0},
    "audit-verify-chain-daily": {"task": "audit.verify_chain", "schedule": timedelta(days=1)},
}

# --- Mail ---------------------------------------------------------------------
EMAIL_BACKEND = env_str("DJANGO_EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
# A silent SMTP server must not hold a worker: mail goes out on the io queue,
# after the run released its target lock, and gives up after this long.
EMAIL_TIMEOUT = env_int("DJANGO_EMAIL_TIMEOUT", 10, minimum=1)
EMAIL_HOST = env_str("DJANGO_EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("DJANGO_EMAIL_PORT", 25, minimum=1)
EMAIL_HOST_USER = env_str("DJANGO_EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("DJANGO_EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("DJANGO_EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = env_str("DJANGO_DEFAULT_FROM_EMAIL", "migrations-dashboard@localhost")
DASHBOARD_BASE_URL = env_str("DASHBOARD_BASE_URL", "http://127.0.0.1:8000")

# --- Security -----------------------------------------------------------------
SESSION_COOKIE_AGE = int(
    env_duration("DASHBOARD_SESSION_IDLE", timedelta(minutes=30)).total_seconds()
)
SESSION_SAVE_EVERY_REQUEST = True  # the age above is an idle timeout
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
X_FRAME_OPTIONS = "DENY"
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", False)
SECURE_HSTS_SECONDS = env_int("DJANGO_HSTS_SECONDS", 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_HSTS_INCLUDE_SUBDOMAINS", SECURE_HSTS_SECONDS > 0)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_HSTS_PRELOAD", SECURE_HSTS_SECONDS > 0)
SECURE_PROXY_SSL_HEADER = (
    ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("DJANGO_BEHIND_TLS_PROXY", False) else None
)

# Failed logins are throttled by django-axes: after AXES_FAILURE_LIMIT failures
# for a username the account is locked for AXES_COOLOFF_TIME (audited).
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env_int("DASHBOARD_LOGIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = env_duration("DASHBOARD_LOGIN_LOCKOUT", timedelta(minutes=15))
AXES_LOCKOUT_PARAMETERS = ["username"]
# Lock the *account* (the attack on an approver's password), not the address:
# behind a proxy or NAT a per-IP lock would lock out a whole office.
SILENCED_SYSTEM_CHECKS = ["axes.W006"]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "dashboard/locked_out.html"
AXES_VERBOSE = False
# Approving a production request needs a password typed this recently.
DASHBOARD_REAUTH_MAX_AGE = env_duration("DASHBOARD_REAUTH_MAX_AGE", timedelta(minutes=10))

# Content Security Policy: scripts only from our own static files (htmx is
# vendored, no CDN, no inline script). Inline *styles* stay allowed for the
# admin's widgets and the revision graph's SVG attributes.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "font-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

# --- Logging: plain lines to stderr; never log database URLs ----------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("DJANGO_LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # Alembic chatters at INFO on every status read; the runner raises it to
        # INFO while a migration runs, to record its lines on the run.
        "alembic": {"level": "WARNING"},
        "alembic.runtime.plugins": {"level": "WARNING"},
        # Beat sends the reaper every 2 s: keep "received/succeeded" chatter of
        # routine tasks out of the terminal; runs log their own lines.
        "celery.app.trace": {"level": "WARNING"},
        "celery.worker.strategy": {"level": "WARNING"},
        "celery.beat": {"level": "WARNING"},
    },
}

# -- settings added by feature work go below this line --

# Environments (issue 4): seconds a status/drift read may wait for a target.
ENVIRONMENTS_STATUS_TIMEOUT = env_int("DASHBOARD_STATUS_TIMEOUT", 3, minimum=1)
ENVIRONMENTS_DRIFT_MAX_AGE = env_duration("DASHBOARD_DRIFT_MAX_AGE", timedelta(minutes=10))
ENVIRONMENTS_DRIFT_METADATA = env_str("DASHBOARD_DRIFT_METADATA", "magnetiq_schema:metadata")
SQUAWK_CONFIG = env_path("DASHBOARD_SQUAWK_CONFIG", BASE_DIR / ".squawk.toml")

# --- Approvals and execution (docs/approvals.md) -------------------------------
DASHBOARD_RUN_HEARTBEAT = env_duration("DASHBOARD_RUN_HEARTBEAT", timedelta(seconds=5))
# A run whose heartbeat is this late is reaped even when its target cannot
# tell whether the run's session still holds the lock (6 beats by default);
# with the target's word that the lock is free it is reaped after 1.5 beats.
DASHBOARD_RUN_REAP_AFTER = env_duration("DASHBOARD_RUN_REAP_AFTER", DASHBOARD_RUN_HEARTBEAT * 6)
# A silent network path to a target is noticed within this long (TCP
# keepalives and tcp_user_timeout on both ends of a run's connection).
DASHBOARD_TARGET_TCP_TIMEOUT = env_duration("DASHBOARD_TARGET_TCP_TIMEOUT", timedelta(seconds=30))
# Approving answers within this long even when the broker is down.
DASHBOARD_DISPATCH_WAIT = env_duration("DASHBOARD_DISPATCH_WAIT", timedelta(seconds=1.5))
# An approved request (or a rollout's target) no worker claimed is sent again
# after this long (a broker restart loses queued messages).
DASHBOARD_REDISPATCH_AFTER = env_duration("DASHBOARD_REDISPATCH_AFTER", timedelta(minutes=2))
DASHBOARD_RUN_LOCK_RETRIES = env_int("DASHBOARD_RUN_LOCK_RETRIES", 2, minimum=0)
DASHBOARD_RUN_LOCK_RETRY_DELAY = env_duration(
    "DASHBOARD_RUN_LOCK_RETRY_DELAY", timedelta(seconds=5)
)

# --- Audit trail (docs/audit.md, docs/operations.md "Client IP behind a proxy") --
# How many reverse proxies in front of the dashboard append to X-Forwarded-For;
# the audit's client IP trusts that header only that deep (0: REMOTE_ADDR only).
DASHBOARD_TRUSTED_PROXIES = env_int("DASHBOARD_TRUSTED_PROXIES", 0, minimum=0)
