"""Settings, all from the environment (12-factor). Bad values fail at start with a clear message.

Zero configuration gives a single-machine mode: SQLite in ./var and a file-system Celery broker,
so `make run` needs no server. Production sets DATABASE_URL and REDIS_URL (and BROKER_URL for RabbitMQ).
"""

import ipaddress
from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from scheduling.rates import parse_rate, parse_request_limit
from scheduling.store import SentinelUrl, is_sentinel

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(environ.Env().str("VAR_DIR", default=str(BASE_DIR / "var")))

env = environ.Env()


def env_or_fail(reader, name, **kwargs):
    """Read one variable; turn a parse error into a message that names the variable."""
    try:
        return reader(name, **kwargs)
    except (ValueError, ImproperlyConfigured) as exc:
        raise ImproperlyConfigured(f"Environment variable {name} is invalid: {exc}") from exc


DEBUG = env_or_fail(env.bool, "DEBUG", default=False)
SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off (set DEBUG=1 for local development).")
    SECRET_KEY = "insecure-development-key-only-used-when-DEBUG-is-on"

ALLOWED_HOSTS = env_or_fail(env.list, "ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env_or_fail(env.list, "CSRF_TRUSTED_ORIGINS", default=[])
PORT = env_or_fail(env.int, "PORT", default=3000)

INSTALLED_APPS = [
    "scheduling.admin_apps.OpsAdminConfig",  # django.contrib.admin with the operations dashboard
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "axes",
    "scheduling",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",  # last, as django-axes asks: it answers for a locked-out login
]

ROOT_URLCONF = "project.urls"
WSGI_APPLICATION = "project.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
DATABASES = {
    "default": env_or_fail(env.db_url, "DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    # Web, worker and pump write to one file: wait for the lock instead of failing, and let
    # readers run beside the writer.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        timeout=30,
        transaction_mode="IMMEDIATE",
        init_command="PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    )
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env_or_fail(env.int, "CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Admin logins: django-axes counts failures per username and client address; after AXES_FAILURE_LIMIT
# that pair is locked out (429) for ADMIN_LOGIN_LOCKOUT_MINUTES. Its attempts are in the admin.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = env_or_fail(env.int, "ADMIN_LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env_or_fail(env.float, "ADMIN_LOGIN_LOCKOUT_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_VERBOSE = False  # no start-up banner in every process's log; lockouts are still logged

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = DEBUG

# --- Security (what `manage.py check --deploy` asks for; HTTPS is terminated in front) -------
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env_or_fail(env.bool, "SECURE_SSL_REDIRECT", default=not DEBUG)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
SECURE_HSTS_SECONDS = env_or_fail(env.int, "SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_or_fail(
    env.bool, "SECURE_HSTS_INCLUDE_SUBDOMAINS", default=SECURE_HSTS_SECONDS > 0
)
SECURE_HSTS_PRELOAD = env_or_fail(env.bool, "SECURE_HSTS_PRELOAD", default=SECURE_HSTS_SECONDS > 0)
# Secure cookies are sent over HTTPS only: an admin served over plain HTTP (an internal deployment
# without TLS) needs SECURE_COOKIES=0, or its login form fails the CSRF check. README, production.
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env_or_fail(env.bool, "SECURE_COOKIES", default=not DEBUG)

# --- REST framework and OpenAPI -------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": [],
    "DEFAULT_PARSER_CLASSES": ["scheduling.api.parsers.LimitedJSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "EXCEPTION_HANDLER": "scheduling.api.session.errors.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Scheduled messages API",
    "DESCRIPTION": "Schedule WhatsApp/SMS-style messages; durable, sent once, on time.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- The product's own settings -------------------------------------------------------------
API_MAX_BODY_BYTES = env_or_fail(env.int, "API_MAX_BODY_BYTES", default=64 * 1024)
API_MAX_BULK_BODY_BYTES = env_or_fail(env.int, "API_MAX_BULK_BODY_BYTES", default=1024 * 1024)
OMNIMESSAGE_BULK_MAX = env_or_fail(env.int, "OMNIMESSAGE_BULK_MAX", default=500)  # omnimessages in one bulk request
# POST /sessions/{id}/scheduled/bulk: messages in one request, and a body that holds that many (4 KiB each).
SCHEDULE_BULK_MAX = env_or_fail(env.int, "SCHEDULE_BULK_MAX", default=1000)
SCHEDULE_BULK_MAX_BODY_BYTES = env_or_fail(env.int, "SCHEDULE_BULK_MAX_BODY_BYTES", default=4 * 1024 * 1024)
# A creating POST's Idempotency-Key (README, "Retrying safely") is remembered this long.
IDEMPOTENCY_KEY_TTL = timedelta(hours=env_or_fail(env.float, "IDEMPOTENCY_KEY_HOURS", default=24))
# Requests per API key or omnimessage credential, fleet-wide (Redis): "100/min", "5/s"; "0" turns limiting
# off. A session may have its own limit (admin).
API_RATE_LIMIT = env_or_fail(
    lambda name, default: parse_request_limit(env.str(name, default=default)), "API_RATE_LIMIT", default="100/min"
)
API_PAGE_SIZE = env_or_fail(env.int, "API_PAGE_SIZE", default=100)
API_MAX_PAGE_SIZE = 500
SCHEDULE_MAX_AHEAD = timedelta(days=env_or_fail(env.float, "SCHEDULE_MAX_AHEAD_DAYS", default=30))
# A client's "now" arrives a little late; accept times this far in the past and send at once.
SCHEDULE_PAST_TOLERANCE = timedelta(seconds=env_or_fail(env.float, "SCHEDULE_PAST_TOLERANCE_SECONDS", default=10))

# Dispatch (docs/ARCHITECTURE.md). Only work due within the horizon ever reaches the broker.
DISPATCH_HORIZON = timedelta(minutes=env_or_fail(env.float, "DISPATCH_HORIZON", default=5))
# A hand-over whose due time is this far behind the fleet's front (the latest due time being sent,
# or now) while the message is still pending is taken as lost (broker flushed, worker killed
# holding it) and handed over again.
DISPATCH_STALE_AFTER = timedelta(seconds=env_or_fail(env.float, "DISPATCH_STALE_AFTER_SECONDS", default=60))
# A worker holds a claimed message this long at most; past it the pump recovers the message.
DISPATCH_LEASE = timedelta(seconds=env_or_fail(env.float, "DISPATCH_LEASE_SECONDS", default=120))
DISPATCH_MAX_ATTEMPTS = env_or_fail(env.int, "DISPATCH_MAX_ATTEMPTS", default=6)
# A message not sent this long after its time (an outage, a pause, retries, pacing) expires instead of going out
# late; a session may set its own (admin), a message its own expiresAt. Unset: no deadline.
_max_lateness = env_or_fail(env.float, "DISPATCH_MAX_LATENESS_SECONDS", default=None)
if _max_lateness is not None and _max_lateness <= 0:
    raise ImproperlyConfigured("DISPATCH_MAX_LATENESS_SECONDS must be a positive number of seconds (unset: none).")
DISPATCH_MAX_LATENESS = None if _max_lateness is None else timedelta(seconds=_max_lateness)
DISPATCH_RETRY_BASE = env_or_fail(env.float, "DISPATCH_RETRY_BASE_SECONDS", default=2.0)
DISPATCH_RETRY_MAX = env_or_fail(env.float, "DISPATCH_RETRY_MAX_SECONDS", default=300.0)
DISPATCH_PUMP_INTERVAL = env_or_fail(env.float, "DISPATCH_PUMP_INTERVAL_SECONDS", default=0.5)
DISPATCH_PUMP_BATCH = env_or_fail(env.int, "DISPATCH_PUMP_BATCH", default=1000)
# Messages due within one tick share a task, however they were created: the task runs at the tick's end
# (never early, at most a tick late) and claims up to DISPATCH_SEND_BATCH of what is due by then; a
# task that took a full batch first hands the rest to another task, so the whole fleet joins a campaign.
DISPATCH_TICK = timedelta(milliseconds=env_or_fail(env.float, "DISPATCH_TICK_MS", default=50))
DISPATCH_SEND_BATCH = env_or_fail(env.int, "DISPATCH_SEND_BATCH", default=200)
# Provider calls are I/O: each worker process keeps up to this many of a batch's sends in flight (threads
# that only do HTTP; the database work stays in the task's own thread, batched).
SEND_CONCURRENCY = env_or_fail(env.int, "SEND_CONCURRENCY", default=100)
SEND_TIME_LIMIT = env_or_fail(env.int, "SEND_TIME_LIMIT_SECONDS", default=60)
if DISPATCH_LEASE.total_seconds() <= SEND_TIME_LIMIT:
    raise ImproperlyConfigured("DISPATCH_LEASE_SECONDS must exceed SEND_TIME_LIMIT_SECONDS.")

# Recurring series: each occurrence is made this long before it enters the dispatch horizon (the pump, a
# few per pass); one the pump reaches later than RECURRING_MAX_LATENESS past its time (it was down) is skipped.
RECURRING_LEAD = timedelta(seconds=env_or_fail(env.float, "RECURRING_LEAD_SECONDS", default=60))
RECURRING_MAX_LATENESS = timedelta(seconds=env_or_fail(env.float, "RECURRING_MAX_LATENESS_SECONDS", default=3600))
RECURRING_PUMP_BATCH = env_or_fail(env.int, "RECURRING_PUMP_BATCH", default=100)

# Webhooks (docs/ARCHITECTURE.md, the outbox): attempt n+1 waits WEBHOOK_RETRY_SCHEDULE[n] seconds (±10 % jitter)
# after attempt n fails; after the last entry the delivery is exhausted. About a day in all.
WEBHOOK_RETRY_SCHEDULE = [
    float(seconds)
    for seconds in env_or_fail(
        env.list, "WEBHOOK_RETRY_SCHEDULE", default=["5", "300", "1800", "7200", "18000", "36000", "36000"]
    )
]
WEBHOOK_TIMEOUT = env_or_fail(env.float, "WEBHOOK_TIMEOUT_SECONDS", default=15.0)
# Webhook URLs resolving to private, loopback or link-local addresses are refused unless this is on.
WEBHOOK_ALLOW_PRIVATE = env_or_fail(env.bool, "WEBHOOK_ALLOW_PRIVATE", default=False)
if WEBHOOK_TIMEOUT >= SEND_TIME_LIMIT:
    raise ImproperlyConfigured("WEBHOOK_TIMEOUT_SECONDS must be below SEND_TIME_LIMIT_SECONDS.")

# Operations: /readyz wants a pump heartbeat this fresh; /metrics is open to a bearer token or these networks.
PUMP_HEARTBEAT_MAX_AGE = env_or_fail(env.float, "PUMP_HEARTBEAT_MAX_AGE_SECONDS", default=30.0)
# Closed unless opened: behind a reverse proxy on the same host every client is loopback, so no
# network is open by default.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
METRICS_ALLOWED_NETWORKS = env_or_fail(env.list, "METRICS_ALLOWED_NETWORKS", default=[])
for _network in METRICS_ALLOWED_NETWORKS:
    try:
        ipaddress.ip_network(_network)
    except ValueError as exc:
        raise ImproperlyConfigured(f"Environment variable METRICS_ALLOWED_NETWORKS is invalid: {exc}") from None

# --- Transports (like DATABASES: a named BACKEND + OPTIONS; each session picks one by name) --
TRANSPORT_URL = env.str("TRANSPORT_URL", default="console:")
TRANSPORT_TIMEOUT = env_or_fail(env.float, "TRANSPORT_TIMEOUT_SECONDS", default=15.0)


def transport_from_url(url, variable="TRANSPORT_URL"):
    if url == "console:":
        return {"BACKEND": "scheduling.transports.console.ConsoleTransport", "OPTIONS": {}}
    if url.startswith(("http://", "https://")):
        return {
            "BACKEND": "scheduling.transports.http.HttpTransport",
            "OPTIONS": {"URL": url, "TIMEOUT": TRANSPORT_TIMEOUT},
        }
    raise ImproperlyConfigured(f"{variable} must be 'console:' or an http(s) URL, not {url!r}.")


def with_rate(transport, variable, default=""):
    """OPTIONS["RATE"] from the environment ("50/s", "80/s", "30/min"): the transport's fleet-wide send rate."""
    rate = env.str(variable, default=default)
    try:
        parse_rate(rate)
    except ValueError as exc:
        raise ImproperlyConfigured(f"Environment variable {variable} is invalid: {exc}") from None
    if rate:
        transport["OPTIONS"] = {**transport["OPTIONS"], "RATE": rate}
    return transport


TRANSPORTS = {
    "default": with_rate(transport_from_url(TRANSPORT_URL), "TRANSPORT_RATE"),
    "console": transport_from_url("console:"),
}
# Omnimessage channels: SMS_TRANSPORT_URL, VIBER_TRANSPORT_URL, WHATSAPP_TRANSPORT_URL add a transport
# named after the channel; a channel without one uses "default". Sessions may override per channel.
OMNIMESSAGE_CHANNELS = ["sms", "viber", "whatsapp"]
for _channel in OMNIMESSAGE_CHANNELS:
    _variable = f"{_channel.upper()}_TRANSPORT_URL"
    if env.str(_variable, default=""):
        TRANSPORTS[_channel] = with_rate(
            transport_from_url(env.str(_variable), _variable), f"{_channel.upper()}_TRANSPORT_RATE"
        )
CHANNEL_TRANSPORTS = {channel: channel if channel in TRANSPORTS else "default" for channel in OMNIMESSAGE_CHANNELS}
OMNIMESSAGE_DEFAULT_SENDER = env.str("OMNIMESSAGE_DEFAULT_SENDER", default="Scheduler")
# One channel message per channel kind at most: a request must not fan out into many sends and reports.
OMNIMESSAGE_MAX_CHANNELS = len(OMNIMESSAGE_CHANNELS)
if env.str("WHATSAPP_CLOUD_TOKEN", default=""):
    # Meta's default throughput is 80 messages/s per business number (1,000 once upgraded): paced to it.
    TRANSPORTS["whatsapp_cloud"] = with_rate(
        {
            "BACKEND": "scheduling.transports.whatsapp_cloud.WhatsAppCloudTransport",
            "OPTIONS": {
                "TOKEN": env.str("WHATSAPP_CLOUD_TOKEN"),
                "PHONE_NUMBER_ID": env.str("WHATSAPP_CLOUD_PHONE_NUMBER_ID"),
                "BASE_URL": env.str("WHATSAPP_CLOUD_BASE_URL", default="https://graph.facebook.com/v21.0"),
            },
        },
        "WHATSAPP_CLOUD_RATE",
        default="80/s",
    )
if env.str("TWILIO_ACCOUNT_SID", default=""):
    # Twilio's rate depends on the sender (1/s for a US long code, 3/s toll-free, 100/s a short code): TWILIO_RATE.
    TRANSPORTS["twilio"] = with_rate(
        {
            "BACKEND": "scheduling.transports.twilio.TwilioTransport",
            "OPTIONS": {
                "ACCOUNT_SID": env.str("TWILIO_ACCOUNT_SID"),
                "AUTH_TOKEN": env.str("TWILIO_AUTH_TOKEN"),
                "FROM": env.str("TWILIO_FROM"),
                "BASE_URL": env.str("TWILIO_BASE_URL", default="https://api.twilio.com"),
            },
        },
        "TWILIO_RATE",
    )

# --- The Redis store and the Celery broker (docs/DEPLOYMENT.md; the README, "When a part goes away") ---
# REDIS_URL is the shared store (fleet-wide metrics, pacing, the tick keys) and, unless BROKER_URL names
# another, the broker as well. Either may be Redis Sentinel (`sentinel://h1:26379;sentinel://h2:26379`,
# the master's name in SENTINEL_MASTER_NAME, or BROKER_SENTINEL_MASTER_NAME for the broker's); the broker
# may be RabbitMQ (`amqp://…`). Neither set: a broker in files, and no store (`make run`).
REDIS_URL = env.str("REDIS_URL", default="")
BROKER_URL = env.str("BROKER_URL", default="") or REDIS_URL
SENTINEL_MASTER_NAME = env.str("SENTINEL_MASTER_NAME", default="")
BROKER_SENTINEL_MASTER_NAME = env.str("BROKER_SENTINEL_MASTER_NAME", default=SENTINEL_MASTER_NAME)
BROKER_KINDS = {"redis": "redis", "rediss": "redis", "sentinel": "redis", "amqp": "amqp", "amqps": "amqp"}


def checked_redis_url(variable, url, master_name, master_variable):
    """`url` if it names a Redis (plain or Sentinel, with its master's name); otherwise stop, saying why."""
    scheme = url.partition("://")[0]
    if BROKER_KINDS.get(scheme) != "redis":
        raise ImproperlyConfigured(f"{variable} must be a redis://, rediss:// or sentinel:// URL, not {scheme}://…")
    if is_sentinel(url):
        try:
            SentinelUrl.parse(url)
        except ValueError as exc:
            raise ImproperlyConfigured(f"Environment variable {variable} is invalid: {exc}") from None
        if not master_name:
            raise ImproperlyConfigured(f"{variable} names Redis Sentinel: set {master_variable} to its master's name.")
    return url


if REDIS_URL:
    checked_redis_url("REDIS_URL", REDIS_URL, SENTINEL_MASTER_NAME, "SENTINEL_MASTER_NAME")
elif BROKER_URL:
    raise ImproperlyConfigured("BROKER_URL needs REDIS_URL too: Redis is the store for pacing, metrics and ticks.")
BROKER_KIND = BROKER_KINDS.get(BROKER_URL.partition("://")[0], "other") if BROKER_URL else "files"
if BROKER_KIND == "other":
    raise ImproperlyConfigured("BROKER_URL must be a redis://, rediss://, sentinel://, amqp:// or amqps:// URL.")

if BROKER_KIND == "redis":
    CELERY_BROKER_URL = checked_redis_url(
        "BROKER_URL", BROKER_URL, BROKER_SENTINEL_MASTER_NAME, "BROKER_SENTINEL_MASTER_NAME"
    )
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        # Far above the horizon: a reserved ETA task must never be redelivered to a second worker
        # while the first still holds it (the plain-ETA design's double send).
        "visibility_timeout": env_or_fail(env.int, "BROKER_VISIBILITY_TIMEOUT", default=6 * 3600),
        # A broker that is unreachable (not only refusing) must not hold a write or a worker for minutes.
        "socket_connect_timeout": 3,
        "socket_timeout": 10,
        **({"master_name": BROKER_SENTINEL_MASTER_NAME} if is_sentinel(BROKER_URL) else {}),
    }
elif BROKER_KIND == "amqp":
    CELERY_BROKER_URL = BROKER_URL
    # Quorum queues (replicated and durable: a broker restart keeps every task) and Celery's native delayed
    # delivery for ETAs, which needs a topic exchange; handover.py makes its whole seconds exact again.
    CELERY_TASK_DEFAULT_QUEUE_TYPE = "quorum"
    CELERY_TASK_DEFAULT_EXCHANGE_TYPE = "topic"
    # A hand-over counts once RabbitMQ has it (publisher confirms): one lost with a connection raises and is
    # left to the pump, instead of vanishing unnoticed.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"confirm_publish": True}
    # A worker that is gone (its host cut off) is noticed after two missed heartbeats, and what it held is
    # given to the others.
    CELERY_BROKER_HEARTBEAT = env_or_fail(env.float, "BROKER_HEARTBEAT_SECONDS", default=10.0)
    # No remote control (nothing here revokes or inspects; task events still go out for Flower): its queue is
    # exclusive to a worker's connection, and a worker that reconnected before RabbitMQ had noticed its old
    # connection was gone (a host back from a partition) exited on RESOURCE_LOCKED.
    CELERY_WORKER_ENABLE_REMOTE_CONTROL = False
else:
    # No server needed: a broker in files, shared by the processes of one machine.
    CELERY_BROKER_URL = "filesystem://localhost//"
    _broker_dir = VAR_DIR / "broker"
    for _folder in ("queue", "control", "processed"):
        (_broker_dir / _folder).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "control_folder": str(_broker_dir / "control"),
        "processed_folder": str(_broker_dir / "processed"),
        "store_processed": False,
        "polling_interval": 0.1,  # ETA precision of the file broker follows its polling interval
    }
if DISPATCH_HORIZON.total_seconds() * 2 > CELERY_BROKER_TRANSPORT_OPTIONS.get("visibility_timeout", float("inf")):
    raise ImproperlyConfigured("BROKER_VISIBILITY_TIMEOUT must be far above DISPATCH_HORIZON.")

CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Workers never give up on the broker (Celery's default stops them after 100 attempts): once it is
# back they reconnect on their own, within a second (project/celery.py), and carry on.
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
# A send running when the broker connection drops finishes and is recorded: its outcome lives in the database.
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = False
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# RabbitMQ's quorum queues have no global QoS: a worker's prefetch is fixed when it starts, and a task that
# waits out its last second in the worker (handover.py) holds one of its slots meanwhile. With one slot per
# pool process, a steady stream's early tasks left the due ones queued (p99 lateness 191 ms against 59 ms at
# 100 messages/s: docs/BENCHMARKS.md), so there are four. Redis's prefetch grows with the ETA tasks held.
CELERY_WORKER_PREFETCH_MULTIPLIER = env_or_fail(
    env.int, "WORKER_PREFETCH_MULTIPLIER", default=4 if BROKER_KIND == "amqp" else 1
)
CELERY_TASK_TIME_LIMIT = SEND_TIME_LIMIT
CELERY_TASK_SOFT_TIME_LIMIT = SEND_TIME_LIMIT - min(5, SEND_TIME_LIMIT // 4)
# On SIGTERM a worker gives its running sends this long to finish before it hands everything it holds
# back to the broker; keep it below the platform's kill timeout (30 s on most, 5 s under honcho).
CELERY_WORKER_SOFT_SHUTDOWN_TIMEOUT = env_or_fail(env.float, "WORKER_SOFT_SHUTDOWN_TIMEOUT_SECONDS", default=10.0)
CELERY_WORKER_ENABLE_SOFT_SHUTDOWN_ON_IDLE = True
# Guard: however much is handed over, one worker never holds more ETA tasks than this.
CELERY_WORKER_ETA_TASK_LIMIT = env_or_fail(env.int, "WORKER_ETA_TASK_LIMIT", default=5000)
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.5}
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Celery's Django fixup closes the database connection around every task unless this is set: a new
# PostgreSQL backend per message. Reuse it (Django's CONN_MAX_AGE and health checks still apply).
CELERY_DB_REUSE_MAX = env_or_fail(env.int, "CELERY_DB_REUSE_MAX", default=1000)
# Task events for Flower or a Prometheus Celery exporter watching the fleet.
CELERY_WORKER_SEND_TASK_EVENTS = True
CELERY_TASK_SEND_SENT_EVENT = True

# --- Logging --------------------------------------------------------------------------------
# JSON lines outside DEBUG (LOG_FORMAT=plain|json overrides); dispatch and webhook lines carry
# message_id, session_id and the Celery task_id.
LOG_FORMAT = env.str("LOG_FORMAT", default="plain" if DEBUG else "json")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "task_id": {"()": "scheduling.logcontext.TaskIdFilter"},
        "revoke_without_backend": {"()": "scheduling.logcontext.RevokeWithoutBackendFilter"},
    },
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s %(task_id)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["task_id"]}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    # Django's own default handler would print every 4xx a second time.
    "loggers": {
        "django": {"handlers": ["console"], "level": "INFO", "propagate": False},
        "celery.worker.control": {"filters": ["revoke_without_backend"]},
    },
}
