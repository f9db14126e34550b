"""Settings for energyarb, read from the environment.

Every value comes from an environment variable through a helper that fails loudly on a malformed value.
Defaults are safe for production (DEBUG off, no default secret when DEBUG is off) and convenient for a
developer machine (SQLite under ./var, a broker-less Celery transport) when `DEBUG=1`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("ENERGYARB_VAR_DIR", BASE_DIR / "var"))

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str | None = None) -> str:
    value = os.environ.get(name, default)
    if value is None:
        raise ImproperlyConfigured(f"Set the {name} environment variable.")
    return value


def env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    if raw.strip().lower() in _TRUE:
        return True
    if raw.strip().lower() in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false), not {raw!r}.")


def env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be a number, not {raw!r}.") from exc


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be an integer, not {raw!r}.") from exc


def env_pct(name: str, default: float) -> float:
    """A percentage in [0, 100]."""
    value = env_float(name, default)
    if not 0 <= value <= 100:
        raise ImproperlyConfigured(f"{name} must be a percentage from 0 to 100, not {value!r}.")
    return value


def env_pct_by_tier(name: str) -> dict[str, float]:
    """`tier=pct` pairs, comma-separated (`premium=25,spot=50`); tier codes are checked by `manage.py check`."""
    shares = {}
    for item in env_list(name):
        tier, _, raw = item.partition("=")
        try:
            value = float(raw)
        except ValueError:
            value = -1.0
        if not tier.strip() or not 0 <= value <= 100:
            raise ImproperlyConfigured(f"{name} must list tier=percentage pairs (0 to 100), not {item!r}.")
        shares[tier.strip().lower()] = value
    return shares


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = env_bool("DEBUG", False)
SECRET_KEY = os.environ.get("SECRET_KEY") or ("insecure-dev-only-key" if DEBUG else "")
if not SECRET_KEY:
    raise ImproperlyConfigured("Set SECRET_KEY (required when DEBUG is off).")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    # SimpleAdminConfig: energyarb/urls.py autodiscovers admin modules itself, skipping django-leaflet's,
    # which imports GeoDjango (GDAL) that this project does not need.
    "django.contrib.admin.apps.SimpleAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI served from our static files, not a CDN
    "django_celery_beat",
    "django_celery_results",
    "leaflet",
    "simple_history",
    "core",
    "sites",
    "sla",
    "grid",
    "fleet",
    "optimizer",
    "mara",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Content-Security-Policy and Permissions-Policy on every response (policies below; JSON answers of the API get
    # a fixed strict policy: core.middleware.ContentSecurityPolicyMiddleware).
    "core.middleware.ContentSecurityPolicyMiddleware",
    "django_permissions_policy.PermissionsPolicyMiddleware",
    # An unreachable database or broker answers 503 + Retry-After (JSON under /api/), not 500.
    "core.middleware.ServiceUnavailableMiddleware",
    # A NUL in the path answers 404, an API body larger than API_MAX_BODY_BYTES a JSON 413, before anything reads it.
    "core.middleware.MalformedRequestMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # Django's session, authentication and message middleware, skipped for token requests to the customer API's
    # quotes and purchases, which use none of them (core.browser_state.needs_no_browser_state).
    "core.browser_state.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "core.browser_state.AuthenticationMiddleware",
    "core.browser_state.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "simple_history.middleware.HistoryRequestMiddleware",
]

ROOT_URLCONF = "energyarb.urls"
WSGI_APPLICATION = "energyarb.wsgi.application"

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

# Database: DATABASE_URL (postgres://user@host:5432/name) or SQLite under var/.
DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'energyarb.sqlite3'}"),
        conn_max_age=env_int("DB_CONN_MAX_AGE", 60),
        # Off: a connection the server dropped (restart, failover) fails the one request that finds it, with a 503
        # and Retry-After, and is replaced for the next; on, every request pays a `SELECT 1` round trip instead.
        conn_health_checks=env_bool("DB_CONN_HEALTH_CHECKS", False),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Server-side parameters let psycopg prepare a statement once it has run PREPARE_THRESHOLD times on a
    # connection: the hot paths (token, admission's locked reads, inserts) then skip PostgreSQL's parse and plan,
    # which cost more server CPU than executing them.
    # A prepared statement runs on a generic plan, costed without its parameter values: at PostgreSQL's default
    # random_page_cost (4, spinning disks) the generic plan of admission's overlap read hashes every open contract
    # instead of probing the few its placements name, and grows with the book. 1.1 is the usual value for SSDs
    # (and a database that fits in memory); DB_RANDOM_PAGE_COST="" keeps the server's setting.
    database_options = DATABASES["default"].setdefault("OPTIONS", {})
    database_options.update(
        server_side_binding=env_bool("DB_SERVER_SIDE_BINDING", True),
        prepare_threshold=env_int("DB_PREPARE_THRESHOLD", 5),
    )
    if os.environ.get("DB_RANDOM_PAGE_COST", "1.1").strip():
        page_cost = f"-c random_page_cost={env_float('DB_RANDOM_PAGE_COST', 1.1)}"
        database_options["options"] = " ".join(filter(None, [database_options.get("options", ""), page_cost]))
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Cache: Redis when REDIS_URL is set, else a file cache that every local process shares. The Redis backend
# falls back to local memory while Redis is down (core/cache.py): throttles and pages keep working.
REDIS_URL = os.environ.get("REDIS_URL", "")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "core.cache.ResilientRedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "energyarb",
            "OPTIONS": {
                "socket_connect_timeout": env_float("CACHE_SOCKET_TIMEOUT_S", 0.5),
                "socket_timeout": env_float("CACHE_SOCKET_TIMEOUT_S", 0.5),
                "retry_after_s": env_float("CACHE_RETRY_AFTER_S", 5.0),
            },
        }
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(VAR_DIR / "cache"),
        }
    }

# Password sign-ins (admin, dashboard) go through a failed-login limiter (core/auth.py).
AUTHENTICATION_BACKENDS = ["core.auth.RateLimitedModelBackend"]
LOGIN_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5)  # per client address and username
LOGIN_FAILURE_IP_LIMIT = env_int("LOGIN_FAILURE_IP_LIMIT", 50)  # per client address, any usernames
LOGIN_FAILURE_WINDOW_S = env_int("LOGIN_FAILURE_WINDOW_S", 15 * 60)

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
# Browser libraries come from npm (`npm ci`, see package.json): only the files the dashboard loads are exposed,
# each under a vendor/ prefix (`make run` / `make test` run `npm ci`). Without node_modules, DEBUG's runserver serves
# the pages without them, and `collectstatic` (the manifest storage, DEBUG off) refuses with a message naming
# `npm ci`, since a manifest without them would make the dashboard answer 500.
NODE_MODULES_DIR = BASE_DIR / "node_modules"
_STATIC_SOURCES = [
    (None, BASE_DIR / "static"),
    ("vendor/chart.js", NODE_MODULES_DIR / "chart.js" / "dist"),
    ("vendor/topojson-client", NODE_MODULES_DIR / "topojson-client" / "dist"),
    ("vendor/world-atlas", NODE_MODULES_DIR / "world-atlas"),
]
# What the pages load from npm; collectstatic fails when one of them is not collected (core.storage).
VENDOR_STATIC_FILES = (
    "vendor/chart.js/chart.umd.min.js",
    "vendor/topojson-client/topojson-client.min.js",
    "vendor/world-atlas/countries-110m.json",
)
STATICFILES_DIRS = [path if prefix is None else (prefix, path) for prefix, path in _STATIC_SOURCES if path.is_dir()]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "core.storage.VendorCheckedManifestStorage"
        )
    },
}
WHITENOISE_USE_FINDERS = True
WHITENOISE_MANIFEST_STRICT = False

LOGIN_URL = "admin:login"
# A sign-in without `next` lands on the dashboard (staff); a customer is told there that it needs a staff account.
LOGIN_REDIRECT_URL = "dashboard:index"
# A signed-in session (admin, dashboard) lasts a working day, not Django's two weeks: a staff browser left signed in
# on a shared machine exposes the fleet's economics for hours, not weeks.
SESSION_COOKIE_AGE = env_int("SESSION_COOKIE_AGE_S", 8 * 3600)
# History is an audit trail: reverting would bypass the services (e.g. the contract state machine).
SIMPLE_HISTORY_REVERT_DISABLED = True

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_FILTER_BACKENDS": [
        "core.filters.StrictDjangoFilterBackend",  # a non-boolean value for a boolean filter -> 400
        "rest_framework.filters.OrderingFilter",
        "rest_framework.filters.SearchFilter",
    ],
    "DEFAULT_PAGINATION_CLASS": "core.pagination.StrictLimitOffsetPagination",  # malformed bounds -> 400
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_THROTTLE_CLASSES": [
        "core.throttling.AnonRateThrottle",
        "core.throttling.UserRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": os.environ.get("API_THROTTLE_ANON", "60/min"),
        "user": os.environ.get("API_THROTTLE_USER", "6000/min"),
        "mara": os.environ.get("API_THROTTLE_MARA", "30/hour"),  # POST /mara/sites, per client address
        # Per user, on quote / contract / cancel / sla-request writes (sla.api.views.CustomerWritesMixin).
        "contracts": os.environ.get("API_THROTTLE_CONTRACTS", "120/min"),
    },
    "COERCE_DECIMAL_TO_STRING": True,
    # JSON bodies are bounded (API_MAX_BODY_BYTES), refuse lone surrogates and explain parse errors plainly.
    "DEFAULT_PARSER_CLASSES": [
        "core.parsers.StrictJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    # DRF's negotiation, answered at once for a request that accepts anything (no Accept header or */*).
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "core.negotiation.AnyMediaTypeNegotiation",
    # Failed authentication is throttled like anonymous traffic; nothing unencodable is echoed in an error.
    "EXCEPTION_HANDLER": "core.errors.api_exception_handler",
    # Client address for throttles and the sign-in limiter: behind the TLS proxy, the X-Forwarded-For entry it
    # added; otherwise REMOTE_ADDR (0: never trust the header).
    "NUM_PROXIES": env_int("NUM_PROXIES", 1 if env_bool("BEHIND_TLS_PROXY") else 0),
}

# A token with its user and customer, a tier, and the fleet's SLA limits with the token price (for planning quotes;
# admission checks again under locks), as read by the quote and contract endpoints, are kept this many seconds per
# process (core.db.LocalReadCache); a change made in a process is seen there at once, in the others within
# this time. 0 reads them on every request.
API_READ_CACHE_SECONDS = env_float("API_READ_CACHE_SECONDS", 5.0)
# The hot reads of core.db compiled once per process (on) or built and compiled per call like any queryset (off:
# only to measure what they save, bench/api_load.py).
DB_PREPARED_READS = env_bool("DB_PREPARED_READS", True)
# The largest request body the API (/api/, /mara/) accepts; its bodies are a few hundred bytes. Larger: JSON 413.
API_MAX_BODY_BYTES = env_int("API_MAX_BODY_BYTES", 16 * 1024)

SPECTACULAR_SETTINGS = {
    "TITLE": "energyarb API",
    "DESCRIPTION": "SLA-smart energy arbitrage: sites, prices, SLA capacity and optimization runs.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # The schema and the docs page answer signed-in clients only, like everything else under /api/.
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # Every operation also documents the framework's error answers (400/401/403/404/429/503): core/schema.py.
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "core.schema.document_error_responses",
    ],
    "ENUM_NAME_OVERRIDES": {
        "SiteStatusEnum": "sites.choices.SiteStatus",
        "RunStatusEnum": "optimizer.choices.RunStatus",
        "ContractStatusEnum": "sla.choices.ContractStatus",
        "EventSourceEnum": "grid.choices.EventSource",
        "DataSourceEnum": "sites.choices.DataSource",
        "EventStatusEnum": "grid.choices.EventStatus",
        "DispatchTriggerEnum": "fleet.choices.RoundTrigger",
        "DeviceStatusEnum": "fleet.choices.DeviceStatus",
        "RunTriggerEnum": "optimizer.choices.RunTrigger",
    },
}

# Celery: Redis when REDIS_URL is set; otherwise kombu's filesystem transport, which needs no broker server
# and lets `make run` start a worker with embedded beat on one machine.
CELERY_BROKER_URL = REDIS_URL or "filesystem://"
if not REDIS_URL:
    _queue_dir = VAR_DIR / "celery" / "queue"
    _processed_dir = VAR_DIR / "celery" / "processed"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_queue_dir),
        "data_folder_out": str(_queue_dir),
        "processed_folder": str(_processed_dir),
        "store_processed": False,
        # Exchange -> queue bindings; kombu's default is ./control (the current directory), which would make
        # processes started from different directories route differently.
        "control_folder": str(VAR_DIR / "celery" / "control"),
    }
CELERY_RESULT_BACKEND = "django-db"
CELERY_RESULT_EXTENDED = True
CELERY_CACHE_BACKEND = "default"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_TIMEZONE = "UTC"
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 300)
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 240)
CELERY_TASK_ACKS_LATE = True
# A running optimization's lease: its worker renews it every third of this; a run whose worker died is abandoned
# once it expires (optimizer.services.fail_abandoned_runs), so the next period's run proceeds.
OPTIMIZER_RUN_LEASE_S = env_float("OPTIMIZER_RUN_LEASE_S", 60.0)
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# A broker that refuses a command (Redis at its maxmemory answers OOM, docs/deployment.md) is retried like a lost
# connection: the worker reconnects until the command passes, instead of exiting ("Unrecoverable error").
CELERY_BROKER_CHANNEL_ERROR_RETRY = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {
    # A grid event is answered within seconds: its re-plan has its own queue and worker (docs/grid.md).
    "optimizer.tasks.replan_for_grid_event": {"queue": "grid"},
    # Advice can take up to the Claude timeout and more; it must not delay the next optimization.
    "optimizer.tasks.advise_optimization": {"queue": "default"},
    "optimizer.tasks.prune_old_runs": {"queue": "default"},  # retention must not wait behind optimizations
    "sites.tasks.*": {"queue": "data"},
    "sla.tasks.*": {"queue": "default"},
    "grid.tasks.*": {"queue": "grid"},
    "fleet.tasks.*": {"queue": "fleet"},  # device I/O must never wait behind (or delay) an optimization
    "optimizer.tasks.*": {"queue": "optimizer"},
}

# Domain settings (values of several types, read by key: Any to the type checker).
ENERGYARB: dict[str, Any] = {
    "PRICE_SOURCE": env_str("PRICE_SOURCE", "simulator"),
    "WEATHER_SOURCE": env_str("WEATHER_SOURCE", "simulator"),
    "SIMULATOR_SEED": env_int("SIMULATOR_SEED", 2025),
    "PRICE_SPIKE_CAP_USD_PER_MWH": env_float("PRICE_SPIKE_CAP_USD_PER_MWH", 5000.0),
    "HASHPRICE_LEVEL_USD_PER_PH_DAY": env_float("HASHPRICE_LEVEL_USD_PER_PH_DAY", 50.0),
    "MAX_DATA_AGE_MINUTES": env_int("MAX_DATA_AGE_MINUTES", 30),
    "HACKATHON_API_URL": env_str("HACKATHON_API_URL", "https://mara-hackathon-api.onrender.com"),
    "WEATHER_API_URL": env_str("WEATHER_API_URL", "https://api.open-meteo.com"),
    # Real markets fetched live for the sites tied to their price nodes (comma list of ercot, entsoe, aemo; empty: none,
    # those sites keep the simulator). docs/markets.md.
    "LIVE_MARKETS": [m.strip() for m in env_str("LIVE_MARKETS", "").split(",") if m.strip()],
    "ENTSOE_API_URL": env_str("ENTSOE_API_URL", "https://web-api.tp.entsoe.eu/api"),
    "ENTSOE_API_KEY": env_str("ENTSOE_API_KEY", ""),
    "AEMO_FILES_URL": env_str("AEMO_FILES_URL", "https://aemo.com.au"),
    # ERCOT's MIS host (gridstatus always speaks https to it; trust another CA with REQUESTS_CA_BUNDLE).
    "ERCOT_MIS_HOST": env_str("ERCOT_MIS_HOST", "www.ercot.com"),
    "HACKATHON_API_KEY": env_str("HACKATHON_API_KEY", ""),
    "HTTP_TIMEOUT_S": env_float("HTTP_TIMEOUT_S", 10.0),
    "MAP_TILE_URL": env_str("MAP_TILE_URL", ""),
    "SWITCHING_COST_USD_PER_UNIT": env_float("SWITCHING_COST_USD_PER_UNIT", 0.05),
    # A start loses the machine's warm-up at its earnings (docs/optimizer.md): an ASIC miner boots and joins its pool
    # in a few minutes; a GPU node loads its model (70B class) in about ten.
    "MINER_WARMUP_MINUTES": env_float("MINER_WARMUP_MINUTES", 3.0),
    "INFERENCE_WARMUP_MINUTES": env_float("INFERENCE_WARMUP_MINUTES", 10.0),
    # Units started per hour as a share of inventory (empty: no ramp limit).
    "RAMP_LIMIT_FRACTION_PER_HOUR": (
        env_float("RAMP_LIMIT_FRACTION_PER_HOUR", 0.0) if os.environ.get("RAMP_LIMIT_FRACTION_PER_HOUR") else None
    ),
    # SLA rate card (docs/economics.md): USD per kW-month at 1.0x; a tier sells at its multiplier times this.
    "SLA_BASE_RATE_USD_PER_KW_MONTH": env_float("SLA_BASE_RATE_USD_PER_KW_MONTH", 415.0),
    # Per-customer cap (sla.services.caps): at no moment may one customer's admitted contracts hold more than this
    # share of the fleet's SLA capacity (100: no cap); per tier optionally tighter, e.g. "premium=25,spot=50".
    "SLA_CUSTOMER_SHARE_PCT": env_pct("SLA_CUSTOMER_SHARE_PCT", 50.0),
    "SLA_CUSTOMER_SHARE_PCT_BY_TIER": env_pct_by_tier("SLA_CUSTOMER_SHARE_PCT_BY_TIER"),
    # Cancellation policy, part of each quote's terms: cancelling costs this share of the quoted total of the part
    # of the window not yet served (docs/economics.md).
    "SLA_CANCELLATION_FEE_PCT": env_pct("SLA_CANCELLATION_FEE_PCT", 25.0),
    "CARBON_PRICE_USD_PER_T": env_float("CARBON_PRICE_USD_PER_T", 0.0),
    "SOLVER_TIME_LIMIT_S": env_float("SOLVER_TIME_LIMIT_S", 30.0),
    "HORIZON_HOURS": env_float("HORIZON_HOURS", 6.0),
    # What the live optimizer plans the horizon on: "ridge" (learned from stored history, docs/optimizer.md) or
    # "persistence" (the latest values held).
    "FORECAST": env_str("OPTIMIZER_FORECAST", "persistence").strip().lower(),  # real ERCOT: bench/forecast_real.py
    # Moving a running SLA placement to another site (docs/scenarios.md, "Migration rule"): the destination powers
    # the moved kW for the warm-up (model load) before the cut-over, during which the moved kW serves nothing.
    "MIGRATION_WARMUP_MINUTES": env_float("MIGRATION_WARMUP_MINUTES", 10.0),
    "MIGRATION_DOWNTIME_MINUTES": env_float("MIGRATION_DOWNTIME_MINUTES", 2.0),
    # Hysteresis: a placement is not moved voluntarily until it has run this long where it is.
    "MIGRATION_MIN_DWELL_MINUTES": env_float("MIGRATION_MIN_DWELL_MINUTES", 60.0),
    # Engine re-solves one run may spend on pricing candidate moves (each a small LP).
    "MIGRATION_MAX_EVALUATIONS": env_int("MIGRATION_MAX_EVALUATIONS", 40),
    # Prices, weather, fetch records and finished optimization runs older than this are pruned daily.
    "RETENTION_DAYS": env_int("RETENTION_DAYS", 400),
    # The OpenADR 3 VTN the VEN polls (grid/ven.py); empty URL = no VEN. OAuth client credentials.
    "OPENADR_VTN_URL": env_str("OPENADR_VTN_URL", ""),
    "OPENADR_CLIENT_ID": env_str("OPENADR_CLIENT_ID", ""),
    "OPENADR_CLIENT_SECRET": env_str("OPENADR_CLIENT_SECRET", ""),
    "OPENADR_VEN_NAME": env_str("OPENADR_VEN_NAME", "energyarb"),
    # Transmission charge a coincident peak sets, USD per kW-year, and the kind (4CP or 12CP): docs/grid.md.
    "CP_RATE_USD_PER_KW_YEAR": env_float("CP_RATE_USD_PER_KW_YEAR", 60.0),
    "CP_KIND": env_str("CP_KIND", "4cp").strip().lower(),
}

# The machines (fleet app, docs/fleet.md): dispatch of applied plans, telemetry, credentials.
FLEET: dict[str, Any] = {
    "DRY_RUN": env_bool("FLEET_DRY_RUN", False),  # log every command dispatch would send, send none
    "DEVICE_TIMEOUT_S": env_float("FLEET_DEVICE_TIMEOUT_S", 5.0),
    "RETRIES": env_int("FLEET_RETRIES", 2),  # a command not read back as desired is sent again this many times
    "BACKOFF_S": env_float("FLEET_BACKOFF_S", 0.5),  # doubled on each retry
    "SETTLE_S": env_float("FLEET_SETTLE_S", 0.2),  # wait between a command and its read-back
    "READBACK_CONFIRMATIONS": env_int("FLEET_READBACK_CONFIRMATIONS", 2),  # reads that must agree (flapping)
    "CONCURRENCY": env_int("FLEET_CONCURRENCY", 100),  # devices spoken to at once, per process
    # A round or poll of many devices is split over this many worker processes (pyasic costs CPU per command),
    # each given at least MIN_SHARD devices; a smaller one runs in the dispatcher's own process.
    "WORKERS": env_int("FLEET_WORKERS", min(os.cpu_count() or 1, 4)),
    "MIN_SHARD": env_int("FLEET_MIN_SHARD", 500),
    "TELEMETRY_RETENTION_HOURS": env_int("FLEET_TELEMETRY_RETENTION_HOURS", 48),  # raw reads; rollups: RETENTION_DAYS
    "SECRETS_FILE": env_str("FLEET_SECRETS_FILE", ""),  # NAME=value lines; the environment wins
    "DISPATCH_ON_PLAN": env_bool("FLEET_DISPATCH_ON_PLAN", True),
}

ANTHROPIC_API_KEY = os.environ.get("ANTHROPIC_API_KEY", "")
ANTHROPIC_BASE_URL = os.environ.get("ANTHROPIC_BASE_URL", "")
ANTHROPIC_MODEL = env_str("ANTHROPIC_MODEL", "claude-sonnet-4-6")
ANTHROPIC_TIMEOUT_S = env_float("ANTHROPIC_TIMEOUT_S", 20.0)

LEAFLET_CONFIG: dict[str, Any] = {
    "DEFAULT_CENTER": (30.0, 10.0),
    "DEFAULT_ZOOM": 2,
    "TILES": [],
}

SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", not DEBUG)
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
# Health probes (the image's HEALTHCHECK, Kubernetes' kubelet) speak plain HTTP to the pod: never redirected.
SECURE_REDIRECT_EXEMPT = [r"^api/health/?$"]
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("BEHIND_TLS_PROXY") else None
X_FRAME_OPTIONS = "DENY"

# Content-Security-Policy (django-csp): scripts, styles, fonts and data only from this origin; images also as data:
# URIs (the scenario charts) and from the map's tile server when one is configured. Styles allow inline attributes
# (the admin and Leaflet set them); no inline script runs anywhere (the dashboard passes data by json_script).
_MAP_TILE_ORIGIN = "/".join(ENERGYARB["MAP_TILE_URL"].replace("{s}", "*").split("/", 3)[:3])  # scheme://host
CONTENT_SECURITY_POLICY: dict[str, Any] = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:", *([_MAP_TILE_ORIGIN] if _MAP_TILE_ORIGIN else [])],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}
# Permissions-Policy (django-permissions-policy): no page of ours uses a browser feature, so none is granted.
PERMISSIONS_POLICY: dict[str, list[str]] = {
    feature: []
    for feature in (
        "accelerometer", "camera", "display-capture", "geolocation", "gyroscope", "magnetometer", "microphone",
        "payment", "usb", "fullscreen", "autoplay",
    )
}  # fmt: skip

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    # A 503 of an expected outage is logged once by core.middleware.OutageLog, not once per request here.
    "filters": {"expected_outage": {"()": "core.middleware.ExpectedOutageFilter"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {
        "django.request": {"filters": ["expected_outage"]},
        # One INFO line per HTTP request: a dispatch round speaks to thousands of node agents.
        "httpx": {"level": "WARNING"},
        # gridstatus gives its logger a DEBUG handler of its own at import unless the logger already has one.
        "gridstatus": {"handlers": ["console"], "level": "WARNING", "propagate": False},
    },
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
}
