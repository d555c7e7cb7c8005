"""DL Studio settings, read from the environment.

Embedded default (no REDIS_URL): SQLite in DATA_DIR, in-memory channel layer, in-process
dispatcher. Distributed (REDIS_URL, and DATABASE_URL for PostgreSQL): Celery on Redis,
channels_redis, any number of web processes and workers.
"""

from __future__ import annotations

from pathlib import Path

import dj_database_url

from webapp.env import data_dir, env_bool, env_choice, env_int, env_list, env_str, secret_key

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = data_dir(BASE_DIR)

SECRET_KEY = secret_key(DATA_DIR)
DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost,[::1],testserver")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "ninja",
    "analyses",
    "training_worker",
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
    "webapp.security.ContentSecurityPolicyMiddleware",
    "webapp.middleware.SyncChainMiddleware",  # last: the chain above runs on one thread (see there)
]

ROOT_URLCONF = "webapp.urls"
ASGI_APPLICATION = "webapp.asgi.application"

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
    },
]

DATABASE_URL = env_str("DATABASE_URL")
if DATABASE_URL:
    # No persistent connections: under ASGI each request runs on a thread of its own, so a kept
    # connection is never reused, only left open; 50 API clients exhausted PostgreSQL's 100 (500s,
    # bench/api_status_load.py). Django's advice for ASGI; the workers open one per task anyway.
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=0)}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": DATA_DIR / "db.sqlite3",
            # WAL + IMMEDIATE: the embedded dispatcher writes from worker threads while pages read.
            "OPTIONS": {
                "timeout": 30,
                "transaction_mode": "IMMEDIATE",
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env_str("REDIS_URL")
DISTRIBUTED = bool(REDIS_URL)
if DISTRIBUTED:
    CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": [REDIS_URL]}}
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
# The cache holds login-failure counters (webapp.security): shared through Redis by every web
# process in the distributed deployment, in process memory otherwise.
if DISTRIBUTED:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "dlstudio",
            # A hung Redis must not hang logins: throttling gives up (and lets them through).
            "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# Celery (used only when DISTRIBUTED). Early ack + atomic claim in the task, never acks_late:
# a redelivered training task would re-run from epoch 0 (see DESIGN.md, isolation and liveness).
CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = REDIS_URL or None
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
# Sessions are routed by what they ask for (training_worker.gpus.queue_for: training | training.gpu).
CELERY_TASK_DEFAULT_QUEUE = "training"
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# A busy worker takes no next session (early ack would let it reserve one and sit on it for a whole
# run while another worker idles, or lose it in a crash): it fetches only when a slot is free.
CELERY_WORKER_DISABLE_PREFETCH = True
# Pool children live on: each keeps a warm runner for its next session (training_worker.warm).
CELERY_WORKER_MAX_TASKS_PER_CHILD = None
CELERY_WORKER_CONCURRENCY = env_int("WORKER_CONCURRENCY", 1, minimum=1)
CELERY_TASK_ACKS_LATE = False
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# Training
# Sessions run at once in embedded mode; 0: one per GPU (one on a CPU machine).
EMBEDDED_WORKERS = env_int("EMBEDDED_WORKERS", 0, minimum=0)
# Keep one runner started, TensorFlow imported, for the next session (training_worker.warm).
WARM_RUNNER = env_bool("WARM_RUNNER", True)
RUNNER_PYTHON = env_str("RUNNER_PYTHON")  # default: the interpreter running the worker
SESSION_HEARTBEAT_SECONDS = 5
# A running session whose supervisor wrote no heartbeat for this long is marked failed ("worker lost").
SESSION_LOST_AFTER_SECONDS = env_int("SESSION_LOST_AFTER_SECONDS", 20, minimum=3)
# Distributed mode: work queued this long whose broker message is gone is dispatched again
# (training_worker/redispatch.py; the claim keeps a duplicate from training twice).
SESSION_REDISPATCH_AFTER_SECONDS = env_int("SESSION_REDISPATCH_AFTER_SECONDS", 60, minimum=2)
INTERRUPT_GRACE_SECONDS = env_int("INTERRUPT_GRACE_SECONDS", 60, minimum=1)
# The runner's sandbox and limits (training_worker/sandbox.py, README "Sandbox"). auto: contain it as
# far as the host allows and say on the session page what is missing; required: refuse to train
# uncontained; off: a plain subprocess (development only).
RUNNER_SANDBOX = env_choice("RUNNER_SANDBOX", "auto", ("auto", "required", "off"))
RUNNER_UID = env_int("RUNNER_UID", 65534, minimum=1)  # the runner's unprivileged uid/gid (root workers)
RUNNER_GID = env_int("RUNNER_GID", 65534, minimum=1)
# A cgroup path ("/dlstudio", delegated to the worker) to create runner cgroups in; default: the
# worker's own cgroup (cgroup v2 refuses that when the worker's processes live in it).
RUNNER_CGROUP_PARENT = env_str("RUNNER_CGROUP_PARENT")
RUNNER_MEMORY_MB = env_int("RUNNER_MEMORY_MB", 8192, minimum=64)
RUNNER_MAX_PROCESSES = env_int("RUNNER_MAX_PROCESSES", 1024, minimum=16)  # processes and threads
RUNNER_MAX_FILE_MB = env_int("RUNNER_MAX_FILE_MB", 32768, minimum=1)  # largest file it may write
RUNNER_TIME_LIMIT_MINUTES = env_int("RUNNER_TIME_LIMIT_MINUTES", 24 * 60, minimum=1)
RUNNER_MAX_OUTPUT_MB = env_int("RUNNER_MAX_OUTPUT_MB", 20, minimum=1)  # console output kept

# Uploads: Django's DATA_UPLOAD_MAX_MEMORY_SIZE does not cap files, so uploads are capped explicitly.
MAX_UPLOAD_BYTES = env_int("MAX_UPLOAD_BYTES", 1024 * 1024 * 1024, minimum=1)
FILE_UPLOAD_HANDLERS = ["analyses.uploads.SizeLimitedUploadHandler"]
FILE_UPLOAD_TEMP_DIR = str(DATA_DIR / "tmp")
Path(FILE_UPLOAD_TEMP_DIR).mkdir(exist_ok=True)

MEDIA_ROOT = DATA_DIR / "files"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]

AUTHENTICATION_BACKENDS = [
    "webapp.security.LoginThrottleBackend",  # refuses every login past the failure limits
    "django.contrib.auth.backends.ModelBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False  # the page scripts read it to call the JSON API
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"

# HTTPS=true: the studio is reached over HTTPS only (directly, or through a TLS-terminating proxy
# whose X-Forwarded-Proto uvicorn trusts per FORWARDED_ALLOW_IPS: requests then arrive with the https
# scheme, so SECURE_PROXY_SSL_HEADER stays unset; setting it would trust that header from anyone).
# Cookies are sent over HTTPS only, plain HTTP is redirected, and HSTS is on. Off by default because
# `make run` serves plain http://127.0.0.1. `manage.py check --deploy` is clean with HTTPS=true
# (tests/security/test_settings.py).
HTTPS = env_bool("HTTPS", False)
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_SSL_REDIRECT = HTTPS
SECURE_REDIRECT_EXEMPT = [r"^api/health/$"]  # the container health check probes plain HTTP inside
SECURE_HSTS_SECONDS = env_int("HSTS_SECONDS", 365 * 24 * 3600 if HTTPS else 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env_bool("HSTS_PRELOAD", True)
# Content-Security-Policy of every response (webapp.security): scripts only from our own static
# files (no inline script, no eval); styles may be inline (CodeMirror and uPlot set them).
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: blob:",
        "font-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
# Failed logins (the login form and POST /api/token/) per username and client address, and per
# address whatever the username: past the limit within the window, logging in answers 429.
LOGIN_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 10, minimum=1)
LOGIN_FAILURE_IP_LIMIT = env_int("LOGIN_FAILURE_IP_LIMIT", 100, minimum=1)
LOGIN_FAILURE_WINDOW_SECONDS = env_int("LOGIN_FAILURE_WINDOW_SECONDS", 15 * 60, minimum=1)

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {"uvicorn.error": {"level": "WARNING"}, "django.channels.server": {"level": "WARNING"}},
}
