"""Settings for qflowui, all read from the environment.

Every setting has a default that lets `make run` work on a fresh machine with
nothing configured: SQLite and a filesystem Celery broker in `var/`, and the
built-in QFlow simulator as the upstream. See `.env.example` and the README.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
from pathlib import Path
from urllib.parse import quote, urlsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("QFLOWUI_VAR_DIR", "").strip() or BASE_DIR / "var")
VAR_DIR.mkdir(parents=True, exist_ok=True)


def env_raw(name: str) -> str | None:
    """The raw value of setting `name`: the variable NAME, else the content of the file named
    by NAME_FILE (the Docker secrets convention; its trailing newline dropped), else None.

    A blank NAME counts as unset. NAME and NAME_FILE both set, or a file that cannot be read,
    stop the app with a message naming the variable and the path, never the content.
    """
    value = os.environ.get(name)
    path = os.environ.get(f"{name}_FILE", "").strip()
    if not path:
        return value
    if value is not None and value.strip():
        raise ImproperlyConfigured(f"{name} and {name}_FILE are both set: set only one of them")
    try:
        content = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not UTF-8 text"
        raise ImproperlyConfigured(f"{name}_FILE={path!r} cannot be read: {reason}") from None
    return content.rstrip("\r\n")


def env_str(name: str, default: str = "") -> str:
    raw = env_raw(name)
    return (default if raw is None else raw).strip()


def env_bool(name: str, default: bool) -> bool:
    raw = env_raw(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean (use true or false)")


def env_int(name: str, default: int, minimum: int | None = None) -> int:
    raw = env_raw(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a whole number") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name}={raw!r} must be at least {minimum}")
    return value


def env_float(name: str, default: float) -> float:
    raw = env_raw(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a number") from None


def env_list(name: str, default: list[str]) -> list[str]:
    raw = env_raw(name)
    if raw is None or raw.strip() == "":
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


DEBUG = env_bool("DJANGO_DEBUG", False)
TESTING = "pytest" in sys.modules or (len(sys.argv) > 1 and sys.argv[1] == "test")

SECRET_KEY = env_str("DJANGO_SECRET_KEY")
if not SECRET_KEY:
    if env_bool("DJANGO_SECURE_SSL", False):
        # DJANGO_SECURE_SSL marks a production deployment: no default key there.
        raise ImproperlyConfigured("DJANGO_SECRET_KEY must be set in production")
    # A development key: fine for the embedded demo, refused by `check --deploy`.
    SECRET_KEY = "django-insecure-qflowui-development-key-do-not-use-in-production"  # noqa: S105

# Earlier keys, comma-separated, after a rotation: sessions, evidence bundle signatures and
# alert destinations made under them still verify / decrypt.
SECRET_KEY_FALLBACKS = env_list("DJANGO_SECRET_KEY_FALLBACKS", [])

ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_htmx",
    "template_partials",
    # Sign-in lockouts (django-axes): failed attempts per user name + address, in the database.
    "axes",
    "qflowui.core",
    "qflowui.accounts",
    "qflowui.mirror",
    "qflowui.executions",
    "qflowui.triage",
    "qflowui.teamviews",
    "qflowui.runs",
    "qflowui.simulator",
]

MIDDLEWARE = [
    # /healthz is answered here, before anything that could redirect it, read the session or
    # query the database: it stays instant while the database hangs.
    "qflowui.core.middleware.HealthzMiddleware",
    # A request id (a safe incoming X-Request-ID, else a new one) in every log line, in the
    # tasks the request enqueues, on error pages and in the X-Request-ID response header.
    "qflowui.core.requestid.RequestIdMiddleware",
    # Request counts and latencies for /metrics, by method, view name and status class.
    "qflowui.core.metrics.RequestMetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Compresses what the middleware below produced (so it comes before any that write the
    # body); streaming downloads are left alone. Off with QFLOWUI_GZIP=0.
    *(["qflowui.core.middleware.GZipPagesMiddleware"] if env_bool("QFLOWUI_GZIP", True) else []),
    # A database that is down or too slow gives a short 503 page, never a bare 500.
    "qflowui.core.middleware.DatabaseUnavailableMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "qflowui.accounts.middleware.UserTimezoneMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    # Signed in is not enough: data pages need the Viewers or Runners group, or staff.
    "qflowui.accounts.middleware.DataAccessMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # With single sign-on, sign-out's form may lead on to the provider (CSP form-action).
    "qflowui.accounts.middleware.OidcFormActionMiddleware",
    "qflowui.core.middleware.ContentSecurityPolicyMiddleware",
    # Behind the login: Cache-Control: no-store, private on every response.
    "qflowui.core.middleware.NoStoreMiddleware",
    # Last, as django-axes requires: turns a locked-out sign-in into the login form's message.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "qflowui.urls"
WSGI_APPLICATION = "qflowui.wsgi.application"

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
                "qflowui.core.requestid.context",  # request_id, for pages a user may quote
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL") or f"sqlite:///{VAR_DIR / 'qflowui.sqlite3'}",
        # A connection per request costs PostgreSQL a fork and an authentication (a few ms
        # to tens of ms); kept for a minute and checked before reuse, it costs nothing.
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60, minimum=0),
        conn_health_checks=True,
    )
}
# DATABASE_PASSWORD (or DATABASE_PASSWORD_FILE, a Docker secret) fills in a DATABASE_URL that
# carries no password (a password in the URL wins): the URL can live in plain configuration.
DATABASE_PASSWORD = env_str("DATABASE_PASSWORD")
if DATABASE_PASSWORD and not DATABASES["default"].get("PASSWORD"):
    DATABASES["default"]["PASSWORD"] = DATABASE_PASSWORD
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web, worker and beat share the file: wait for locks instead of failing.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        timeout=20,
        # Read-then-write transactions take the write lock up front instead of failing with
        # "database is locked" when web, worker and beat write at the same time.
        transaction_mode="IMMEDIATE",
    )
    # A file, not memory, so that a Celery worker started by a test sees the test database.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test-qflowui-{os.getpid()}.sqlite3")}
# A database that accepts connections but never answers must not hang pages: connecting
# gives up after DATABASE_CONNECT_TIMEOUT_SECONDS, and in web processes (gunicorn through
# qflowui.wsgi, runserver, tests) PostgreSQL cancels a statement after
# DATABASE_STATEMENT_TIMEOUT_MS (0: never). Migrations, Celery tasks and benches have none.
DATABASE_CONNECT_TIMEOUT_SECONDS = env_int("DATABASE_CONNECT_TIMEOUT_SECONDS", 5, minimum=1)
DATABASE_STATEMENT_TIMEOUT_MS = env_int("DATABASE_STATEMENT_TIMEOUT_MS", 15_000, minimum=0)
WEB_PROCESS = env_bool("QFLOWUI_WEB_PROCESS", False) or TESTING or sys.argv[1:2] == ["runserver"]
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    _db_options = DATABASES["default"].setdefault("OPTIONS", {})
    _db_options.setdefault("connect_timeout", DATABASE_CONNECT_TIMEOUT_SECONDS)
    if WEB_PROCESS and DATABASE_STATEMENT_TIMEOUT_MS:
        _timeout_option = f"-c statement_timeout={DATABASE_STATEMENT_TIMEOUT_MS}"
        _db_options["options"] = f"{_db_options.get('options', '')} {_timeout_option}".strip()
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# Covering indexes (`Index(include=...)`) are PostgreSQL's; SQLite builds them without the
# extra columns, which is all the development database needs.
SILENCED_SYSTEM_CHECKS = ["models.W040"]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/executions/"
LOGOUT_REDIRECT_URL = "login"

# Sign-in lockout (django-axes). After QFLOWUI_LOGIN_FAILURE_LIMIT failed sign-ins for one user
# name from one address, that name is refused from that address (even with the right password)
# for QFLOWUI_LOGIN_COOLOFF_MINUTES. Staff unlock in /admin/ (Users → "Unlock sign-in").
# The address is REMOTE_ADDR only: a forwarded header is the client's word, not a fact.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    # Django's ModelBackend, refusing passwords when QFLOWUI_PASSWORD_LOGIN is off (except
    # superusers at /accounts/break-glass/).
    "qflowui.accounts.backends.PasswordBackend",
    # Single sign-on (OpenID Connect): answers only the /oidc/callback/ request.
    "qflowui.accounts.oidc.OidcBackend",
]
QFLOWUI_LOGIN_FAILURE_LIMIT = env_int("QFLOWUI_LOGIN_FAILURE_LIMIT", 5, minimum=1)
QFLOWUI_LOGIN_COOLOFF_MINUTES = env_int("QFLOWUI_LOGIN_COOLOFF_MINUTES", 15, minimum=1)
AXES_HANDLER = "axes.handlers.database.AxesDatabaseHandler"
AXES_FAILURE_LIMIT = QFLOWUI_LOGIN_FAILURE_LIMIT
AXES_COOLOFF_TIME = "qflowui.accounts.lockout.cool_off"  # reads QFLOWUI_LOGIN_COOLOFF_MINUTES
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
# A refused attempt during a lockout does not extend it: the time on the form stays true.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_CLIENT_IP_CALLABLE = "qflowui.accounts.lockout.client_ip"
AXES_LOCKOUT_CALLABLE = "qflowui.accounts.lockout.lockout_response"
AXES_HTTP_RESPONSE_CODE = 429
# Sign-ins are in qflowui's own audit log (/audit/); axes keeps only the failure counters.
AXES_DISABLE_ACCESS_LOG = True
AXES_SENSITIVE_PARAMETERS = ["username", "ip_address", "password", "csrfmiddlewaretoken"]
# The OpenID Connect callback is no password sign-in: the provider guards its own login.
AXES_WHITELIST_CALLABLE = "qflowui.accounts.oidc.axes_whitelisted"

# Single sign-on with OpenID Connect (mozilla-django-oidc; qflowui/accounts/oidc.py). On when
# OIDC_ISSUER and OIDC_CLIENT_ID are set. The endpoints come from the issuer's discovery
# document, fetched when first needed and cached, never here: a provider that is down never
# stops the app from starting, nor password sign-in.
OIDC_ISSUER = env_str("OIDC_ISSUER").rstrip("/")
OIDC_CLIENT_ID = env_str("OIDC_CLIENT_ID")
OIDC_CLIENT_SECRET = env_str("OIDC_CLIENT_SECRET")
OIDC_SCOPES = env_str("OIDC_SCOPES") or "openid email profile groups"
OIDC_TOKEN_AUTH_METHOD = env_str("OIDC_TOKEN_AUTH_METHOD") or "client_secret_basic"
OIDC_GROUPS_CLAIM = env_str("OIDC_GROUPS_CLAIM") or "groups"
OIDC_VIEWER_GROUPS = env_list("OIDC_VIEWER_GROUPS", [])
OIDC_RUNNER_GROUPS = env_list("OIDC_RUNNER_GROUPS", [])
OIDC_ADMIN_GROUPS = env_list("OIDC_ADMIN_GROUPS", [])
OIDC_PROVIDER_NAME = env_str("OIDC_PROVIDER_NAME") or "your identity provider"
# Seconds the discovery document is kept (a failure to fetch it: a few seconds).
OIDC_DISCOVERY_CACHE_SECONDS = env_int("OIDC_DISCOVERY_CACHE_SECONDS", 300, minimum=1)
# false: no password form on the login page, passwords refused everywhere except
# /accounts/break-glass/ (superusers only).
QFLOWUI_PASSWORD_LOGIN = env_bool("QFLOWUI_PASSWORD_LOGIN", True)
if OIDC_TOKEN_AUTH_METHOD not in {"client_secret_basic", "client_secret_post"}:
    raise ImproperlyConfigured(
        f"OIDC_TOKEN_AUTH_METHOD={OIDC_TOKEN_AUTH_METHOD!r} is not supported "
        "(use client_secret_basic or client_secret_post)"
    )


def oidc_issuer_problem(issuer: str) -> str | None:
    """Why this issuer URL is refused, or None: https only (plain http on loopback only),
    no credentials, no query or fragment (OpenID Connect Discovery 1.0, section 3)."""
    import ipaddress

    try:
        parts = urlsplit(issuer)
        host = parts.hostname or ""
    except ValueError:
        return "is not a URL"
    if parts.scheme not in {"http", "https"} or not host:
        return "is not an https URL"
    if "@" in parts.netloc or parts.query or parts.fragment:
        return "must not carry credentials, a query or a fragment"
    if parts.scheme == "http":
        try:
            loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            return "must use https (plain http only on a loopback address)"
    return None


if OIDC_ISSUER and (_issuer_problem := oidc_issuer_problem(OIDC_ISSUER)):
    _shown_issuer = OIDC_ISSUER if "@" not in OIDC_ISSUER else "(not shown: it has credentials)"
    raise ImproperlyConfigured(f"OIDC_ISSUER={_shown_issuer!r} {_issuer_problem}")
# mozilla-django-oidc's own settings that are fixed here; the others (client, scopes, endpoints,
# token auth method) are derived from the OIDC_* above by qflowui.accounts.oidc.
OIDC_AUTHENTICATE_CLASS = "qflowui.accounts.oidc.AuthenticateView"
OIDC_CALLBACK_CLASS = "qflowui.accounts.oidc.CallbackView"
OIDC_OP_LOGOUT_URL_METHOD = "qflowui.accounts.oidc.provider_logout_url"
OIDC_RP_SIGN_ALGO = "RS256"
OIDC_USE_PKCE = True
OIDC_STORE_ID_TOKEN = True  # the id_token_hint of the provider's sign-out
OIDC_TIMEOUT = 10
LOGIN_REDIRECT_URL_FAILURE = "/accounts/login/"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
# collectstatic's target. The Docker image collects at build time into /app/staticfiles,
# outside the var/ volume (DJANGO_STATIC_ROOT), so a new image never serves old files.
STATIC_ROOT = Path(env_str("DJANGO_STATIC_ROOT") or VAR_DIR / "staticfiles")
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # WhiteNoise warns about a missing root
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG or TESTING
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}
WHITENOISE_USE_FINDERS = DEBUG or TESTING

# Security headers. HTTPS-only settings follow DJANGO_SECURE_SSL (on in production).
SECURE_SSL = env_bool("DJANGO_SECURE_SSL", False)
SECURE_SSL_REDIRECT = SECURE_SSL
SESSION_COOKIE_SECURE = SECURE_SSL
CSRF_COOKIE_SECURE = SECURE_SSL
SECURE_HSTS_SECONDS = 31536000 if SECURE_SSL else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_SSL
SECURE_HSTS_PRELOAD = SECURE_SSL
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if SECURE_SSL else None
# Probes (container health checks, load balancers) speak plain http to the container itself:
# never redirected. qflowui.core.middleware.HealthzMiddleware answers them before the host check.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"

# Celery: Redis in production, an embedded filesystem broker by default.
REDIS_URL = env_str("REDIS_URL")
# REDIS_PASSWORD (or REDIS_PASSWORD_FILE) fills in a REDIS_URL that carries no password (a
# password in the URL wins).
REDIS_PASSWORD = env_str("REDIS_PASSWORD")
if REDIS_PASSWORD and REDIS_URL and urlsplit(REDIS_URL).password is None:
    _redis = urlsplit(REDIS_URL)
    _redis_user = quote(_redis.username or "", safe="")
    _redis_auth = f"{_redis_user}:{quote(REDIS_PASSWORD, safe='')}@"
    REDIS_URL = _redis._replace(netloc=_redis_auth + _redis.netloc.rpartition("@")[2]).geturl()
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL") or REDIS_URL or "filesystem://"
CELERY_BROKER_TRANSPORT_OPTIONS: dict = {}
if CELERY_BROKER_URL.startswith("filesystem://"):
    _broker_dir = VAR_DIR / "broker"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "store_processed": False,
        # Exchange tables; kombu's default is ./control, i.e. the checkout.
        "control_folder": str(_broker_dir / "control"),
    }
CELERY_RESULT_BACKEND = env_str("CELERY_RESULT_BACKEND") or REDIS_URL or None
CELERY_TASK_IGNORE_RESULT = CELERY_RESULT_BACKEND is None
CELERY_TASK_DEFAULT_QUEUE = env_str("CELERY_TASK_DEFAULT_QUEUE", "qflowui")
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_TIMEOUT = env_float("CELERY_BROKER_CONNECTION_TIMEOUT", 2.0)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# The run submit task's hard time limit (its soft limit is 30 s less): past it the worker's
# child is killed and the run is left to the sweeper and reconciliation.
RUNS_SUBMIT_HARD_LIMIT_SECONDS = env_int("RUNS_SUBMIT_HARD_LIMIT_SECONDS", 180, minimum=60)
# Redis hands a message a worker took but never acknowledged (the worker was killed) to
# another worker after this long. Above the longest task, or a running task is delivered
# twice; Redis's own default is an hour, which strands a killed worker's run that long.
CELERY_VISIBILITY_TIMEOUT_SECONDS = env_int(
    "CELERY_VISIBILITY_TIMEOUT_SECONDS", 2 * RUNS_SUBMIT_HARD_LIMIT_SECONDS, minimum=1
)
if CELERY_VISIBILITY_TIMEOUT_SECONDS <= RUNS_SUBMIT_HARD_LIMIT_SECONDS:
    raise ImproperlyConfigured(
        f"CELERY_VISIBILITY_TIMEOUT_SECONDS={CELERY_VISIBILITY_TIMEOUT_SECONDS} must be above "
        f"RUNS_SUBMIT_HARD_LIMIT_SECONDS={RUNS_SUBMIT_HARD_LIMIT_SECONDS}"
    )
if CELERY_BROKER_URL.startswith(("redis://", "rediss://", "redis+socket://")):
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": CELERY_VISIBILITY_TIMEOUT_SECONDS}
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")

# One cache shared by every process (web workers, Celery workers): the single-flight claims
# (detail refresh, payload fetches), the negative cache, the list's counts, the workers'
# heartbeat and the simulator's state. Redis when REDIS_URL is set, else files in var/cache.
# Keys carry QFLOWUI_CACHE_PREFIX, and clearing the cache deletes only those.
CACHE_KEY_PREFIX = env_str("QFLOWUI_CACHE_PREFIX") or "qflowui"
if TESTING and not env_str("QFLOWUI_CACHE_PREFIX"):
    # Test runs side by side keep (and clear) only their own keys; a Celery worker that a
    # test starts inherits the environment, so it shares the test's keys.
    CACHE_KEY_PREFIX = f"qflowui-test-{os.getpid()}"
    os.environ["QFLOWUI_CACHE_PREFIX"] = CACHE_KEY_PREFIX
CACHE_DIR = VAR_DIR / "cache" / CACHE_KEY_PREFIX


def _cache(name: str) -> dict:
    """The shared cache `name`: its own key prefix (and directory), so clearing or culling
    one never touches the other."""
    prefix = CACHE_KEY_PREFIX if name == "default" else f"{CACHE_KEY_PREFIX}-{name}"
    if REDIS_URL:
        return {
            "BACKEND": "qflowui.core.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": prefix,
            # A Redis that hangs costs a page a second at most (then it is left alone a while).
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 1.0},
        }
    return {
        "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
        "LOCATION": str(CACHE_DIR if name == "default" else CACHE_DIR.with_name(prefix)),
        "KEY_PREFIX": prefix,
        # Past this many files, a third of them (chosen at random) are deleted.
        "OPTIONS": {"MAX_ENTRIES": 5_000 if name == "default" else 20_000},
    }


# "simulator": the QFlow simulator's state (runs, faults, rate counters, call log), shared by
# the web processes that serve it.
CACHES = {"default": _cache("default"), "simulator": _cache("simulator")}
if TESTING and not REDIS_URL:
    for _alias in CACHES.values():
        atexit.register(shutil.rmtree, _alias["LOCATION"], ignore_errors=True)

# QFlow upstream. With QFLOW_BASE_URL unset the app serves the simulator and talks to it.
# QFLOWUI_PORT wins over PORT: process managers such as honcho hand every process its own PORT.
PORT = env_int("QFLOWUI_PORT", env_int("PORT", 8000, minimum=1), minimum=1)
QFLOW_BASE_URL = env_str("QFLOW_BASE_URL").rstrip("/")
QFLOW_SIMULATOR = env_bool("QFLOW_SIMULATOR", not QFLOW_BASE_URL)
if not QFLOW_BASE_URL:
    QFLOW_BASE_URL = f"http://127.0.0.1:{PORT}"
# The documented demo pair: the simulator issues tokens for it when no credentials are set.
QFLOW_DEMO_CLIENT_ID = "qflowui-demo"
QFLOW_DEMO_CLIENT_SECRET = "qflowui-demo-secret"  # noqa: S105 - public demo value
QFLOW_TOKEN = env_str("QFLOW_TOKEN")
QFLOW_CLIENT_ID = env_str("QFLOW_CLIENT_ID")
QFLOW_CLIENT_SECRET = env_str("QFLOW_CLIENT_SECRET")
# QFLOWUI_DEMO: the upstream is a QFlow simulator run elsewhere (the Docker demo's own
# `simulator` service): the demo pair is the default credential, nothing else is accepted (so
# a demo login never sits next to a real gateway's data), and ensure_demo_user creates the
# `demo` login as it does with the built-in simulator.
QFLOWUI_DEMO = env_bool("QFLOWUI_DEMO", False)
if QFLOWUI_DEMO and (
    QFLOW_TOKEN
    or QFLOW_CLIENT_ID not in {"", QFLOW_DEMO_CLIENT_ID}
    or QFLOW_CLIENT_SECRET not in {"", QFLOW_DEMO_CLIENT_SECRET}
):
    raise ImproperlyConfigured(
        "QFLOWUI_DEMO=true is for a QFlow simulator upstream: leave QFLOW_TOKEN, "
        "QFLOW_CLIENT_ID and QFLOW_CLIENT_SECRET unset (the public demo pair is used)"
    )
if (QFLOW_SIMULATOR or QFLOWUI_DEMO) and not (QFLOW_TOKEN or QFLOW_CLIENT_ID):
    QFLOW_CLIENT_ID = QFLOW_DEMO_CLIENT_ID
    QFLOW_CLIENT_SECRET = QFLOW_DEMO_CLIENT_SECRET
QFLOW_TIMEOUT_SECONDS = env_float("QFLOW_TIMEOUT_SECONDS", 10.0)
# What one upstream call made while a user waits may take in all (token fetch and one retry
# included); slower fetches (step payloads) go to a Celery task. The sync keeps the above.
QFLOW_PAGE_BUDGET_SECONDS = env_float("QFLOW_PAGE_BUDGET_SECONDS", 4.0)
QFLOW_SYNC_INTERVAL_SECONDS = env_int("QFLOW_SYNC_INTERVAL_SECONDS", 60, minimum=5)
QFLOW_SYNC_ON_START = env_bool("QFLOW_SYNC_ON_START", True)
# A pass claims a workflow for this long and renews the claim before every page: a worker
# killed mid-pass blocks its workflow for at most this long.
QFLOW_SYNC_LEASE_SECONDS = env_int("QFLOW_SYNC_LEASE_SECONDS", 60, minimum=10)
# A workflow is hot while an execution of it is running or when it started at least two
# within this many seconds; hot workflows are due every QFLOW_SYNC_ACTIVE_SECONDS, the others
# every QFLOW_SYNC_RARE_SECONDS. A pass visits the most overdue first (against those goals):
# when the rate budget cannot meet them, every workflow misses its goal by the same factor.
QFLOW_SYNC_HOT_SECONDS = env_int("QFLOW_SYNC_HOT_SECONDS", 3600, minimum=0)
QFLOW_SYNC_ACTIVE_SECONDS = env_int("QFLOW_SYNC_ACTIVE_SECONDS", 300, minimum=5)
QFLOW_SYNC_RARE_SECONDS = env_int("QFLOW_SYNC_RARE_SECONDS", 3600, minimum=5)
# Failed executions whose steps a pass fetches (newest first, with the budget left), so the
# list says which step failed and why. 0: only when someone opens the execution.
QFLOW_SYNC_FAILURE_STEPS_PER_PASS = env_int("QFLOW_SYNC_FAILURE_STEPS_PER_PASS", 20, minimum=0)
CELERY_BEAT_SCHEDULE = {
    "mirror-sync": {
        "task": "mirror.sync",
        "schedule": float(QFLOW_SYNC_INTERVAL_SECONDS),
        # A pass that could not start in time is pointless once the next one is due.
        "options": {"expires": float(QFLOW_SYNC_INTERVAL_SECONDS)},
    },
    # Runs: enqueue what the broker never got; look up runs whose POST answer was lost.
    "runs-sweep": {"task": "runs.sweep", "schedule": 30.0, "options": {"expires": 30.0}},
    "runs-reconcile": {"task": "runs.reconcile", "schedule": 60.0, "options": {"expires": 60.0}},
}
# Saved views' alerts (qflowui/teamviews): links in messages start with QFLOWUI_BASE_URL (the
# address the team opens qflowui at); generic webhooks and IP hosts may reach internal
# addresses only when listed in QFLOWUI_ALERT_ALLOWED_HOSTS; a failing destination is retried
# after QFLOWUI_ALERT_RETRY_SECONDS, doubling up to QFLOWUI_ALERT_RETRY_MAX_SECONDS. Beat
# runs an alert pass every QFLOWUI_ALERT_INTERVAL_SECONDS besides the one after each sync.
QFLOWUI_BASE_URL = env_str("QFLOWUI_BASE_URL", f"http://127.0.0.1:{PORT}").rstrip("/")
QFLOWUI_ALERT_ALLOWED_HOSTS = [
    h.strip("[]").lower() for h in env_list("QFLOWUI_ALERT_ALLOWED_HOSTS", [])
]
QFLOWUI_ALERT_RETRY_SECONDS = env_int("QFLOWUI_ALERT_RETRY_SECONDS", 60, minimum=1)
QFLOWUI_ALERT_RETRY_MAX_SECONDS = env_int("QFLOWUI_ALERT_RETRY_MAX_SECONDS", 3600, minimum=1)
QFLOWUI_ALERT_INTERVAL_SECONDS = env_int("QFLOWUI_ALERT_INTERVAL_SECONDS", 60, minimum=5)
CELERY_BEAT_SCHEDULE["teamviews-alerts"] = {
    "task": "teamviews.alerts",
    "schedule": float(QFLOWUI_ALERT_INTERVAL_SECONDS),
    "options": {"expires": float(QFLOWUI_ALERT_INTERVAL_SECONDS)},
}
# The run form's limits on what a user may type (a clear message beside the field beyond).
RUNS_MAX_INPUT_BYTES = env_int("RUNS_MAX_INPUT_BYTES", 1_000_000, minimum=2)
RUNS_MAX_INPUT_DEPTH = env_int("RUNS_MAX_INPUT_DEPTH", 64, minimum=1)
RUNS_MAX_CUSTOM_VARIABLES = env_int("RUNS_MAX_CUSTOM_VARIABLES", 50, minimum=0)
RUNS_MAX_VARIABLE_BYTES = env_int("RUNS_MAX_VARIABLE_BYTES", 10_000, minimum=1)
# Every run posts this variable with its public id, so the execution it started is found by
# it alone when QFlow's answer is lost. Empty: none is posted, and such runs are never matched
# automatically (a person decides).
RUNS_CORRELATION_VARIABLE = env_str("RUNS_CORRELATION_VARIABLE", "qflowuiRunId")
# The run outbox's timings.
RUNS_ENQUEUE_TIMEOUT_SECONDS = env_float("RUNS_ENQUEUE_TIMEOUT_SECONDS", 0.05)
RUNS_QUEUED_GRACE_SECONDS = env_float("RUNS_QUEUED_GRACE_SECONDS", 5.0)
RUNS_REENQUEUE_AFTER_SECONDS = env_float("RUNS_REENQUEUE_AFTER_SECONDS", 60.0)
RUNS_SUBMITTING_STALE_SECONDS = env_float(
    "RUNS_SUBMITTING_STALE_SECONDS", RUNS_SUBMIT_HARD_LIMIT_SECONDS + 60.0
)
if RUNS_SUBMITTING_STALE_SECONDS <= RUNS_SUBMIT_HARD_LIMIT_SECONDS:
    raise ImproperlyConfigured(
        "RUNS_SUBMITTING_STALE_SECONDS must be above RUNS_SUBMIT_HARD_LIMIT_SECONDS: "
        "a submit still running must never be taken for a lost one"
    )
RUNS_RECONCILE_DELAY_SECONDS = env_float("RUNS_RECONCILE_DELAY_SECONDS", 3.0)
RUNS_RECONCILE_LOOKBACK_MINUTES = env_int("RUNS_RECONCILE_LOOKBACK_MINUTES", 10, minimum=10)
RUNS_RECONCILE_BOUND_MINUTES = env_int("RUNS_RECONCILE_BOUND_MINUTES", 30, minimum=10)
RUNS_SWEEP_ON_START = env_bool("RUNS_SWEEP_ON_START", True)
# Simulator knobs (variants and faults); see qflowui/simulator/config.py.
QFLOW_SIMULATOR_SEED = env_int("QFLOW_SIMULATOR_SEED", 20251123)
QFLOW_SIMULATOR_OPTIONS = env_str("QFLOW_SIMULATOR_OPTIONS")


def shown_url(url: str) -> str:
    """A URL fit for an error message: any user info (user:password@) replaced."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(not a URL)"
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=f"********@{host}").geturl()


_upstream = urlsplit(QFLOW_BASE_URL)
if _upstream.scheme not in {"http", "https"} or not _upstream.netloc:
    raise ImproperlyConfigured(
        f"QFLOW_BASE_URL={shown_url(QFLOW_BASE_URL)!r} is not an http(s) URL"
    )
if "@" in _upstream.netloc:
    # Credentials belong in QFLOW_CLIENT_ID/QFLOW_CLIENT_SECRET, never in a URL that ends up
    # in error messages and logs.
    raise ImproperlyConfigured(
        f"QFLOW_BASE_URL={shown_url(QFLOW_BASE_URL)!r} must not carry credentials: "
        "set QFLOW_CLIENT_ID and QFLOW_CLIENT_SECRET (or QFLOW_TOKEN) instead"
    )
# Host names allowed over plain http besides loopback, by explicit opt-in: the Docker demo's
# `simulator` service on the stack's private network. Never a real gateway.
QFLOW_ALLOW_HTTP_HOSTS = [host.lower() for host in env_list("QFLOW_ALLOW_HTTP_HOSTS", [])]
if _upstream.scheme == "http" and _upstream.hostname not in {
    "127.0.0.1",
    "localhost",
    "::1",
    *QFLOW_ALLOW_HTTP_HOSTS,
}:
    # The bearer token would travel in clear text: only loopback may use plain http.
    raise ImproperlyConfigured(
        f"QFLOW_BASE_URL={shown_url(QFLOW_BASE_URL)!r} must use https "
        "(or name its host in QFLOW_ALLOW_HTTP_HOSTS, for a simulator on a private network)"
    )

# /metrics (Prometheus text format) answers only `Authorization: Bearer <this token>`;
# unset: /metrics is off (404). QFLOWUI_METRICS_TOKEN_FILE works too.
QFLOWUI_METRICS_TOKEN = env_str("QFLOWUI_METRICS_TOKEN")

# Log lines: plain text (default) or one JSON object per line (LOG_FORMAT=json), with the
# request id and user, in web, worker and beat processes alike (qflowui.core.logformat).
LOG_FORMAT = env_str("LOG_FORMAT", "plain").lower() or "plain"
if LOG_FORMAT not in {"plain", "json"}:
    raise ImproperlyConfigured(f"LOG_FORMAT={LOG_FORMAT!r} is not plain or json")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    # Every record is made safe where it is created (no secret, no raw control character
    # from upstream text): qflowui.core.logsafe, installed by the core app.
    "formatters": {
        "plain": {"()": "qflowui.core.logformat.PlainFormatter"},
        "json": {"()": "qflowui.core.logformat.JsonFormatter"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        "urllib3": {"level": "WARNING"},
        # django-axes says "BEGIN version ..." at every start of every process.
        "axes": {"level": "WARNING"},
    },
}
