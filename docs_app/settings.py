"""One env-driven settings module.

Development defaults are safe and self-contained (SQLite, local Redis, local Chroma server, the packaged
stand-in model under DATA_DIR). Production is switched on with DOCS_PRODUCTION=1, which refuses to start
without a real secret key and allowed hosts.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

# Nothing may leave the building: no model hub look-ups, no telemetry, from any process that imports settings.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# llama.cpp and torch use OpenMP, whose threads spin while waiting by default. On a small shared box (an ingest
# and an answer worker on the same cores) spinning threads starve each other: PASSIVE measured 2-4x faster
# decoding here. It must be set before either library loads, which importing settings guarantees.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# Confidential files: everything a process of the app creates (database and its WAL, stored PDFs, page renders,
# keys, logs) is readable by the app's user alone, whatever umask the shell or service manager handed down.
# Every Django and Celery process imports this module; scripts/run.sh sets the same umask for Chroma and Redis.
os.umask(0o077)


def env_str(name: str, default: str) -> str:
    return os.environ.get(name, default)


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be an integer, got {raw!r}") from exc


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in {"1", "true", "yes", "on"}:
        return True
    if raw.lower() in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean, got {raw!r}")


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in env_str(name, default).split(",") if item.strip()]


BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(env_str("DOCS_DATA_DIR", str(BASE_DIR / "var"))).resolve()
# The stored originals, read through Django's default storage (docs_app.storage). Several hosts (web, ingest
# workers elsewhere) share them by pointing this at the same shared mount; each host keeps its own DATA_DIR.
MEDIA_ROOT = Path(env_str("DOCS_FILES_DIR", str(DATA_DIR / "files"))).resolve()
# Page renders (web hosts). With several web hosts, put it on the shared mount too: erasing a document deletes its
# renders from this one directory, so a render kept on another host's own disk would survive the erasure.
PAGE_CACHE_DIR = Path(env_str("DOCS_PAGE_CACHE_DIR", str(DATA_DIR / "page-cache"))).resolve()
# Private temporary copies on this host: an upload before it is kept, and, when the store has no local paths (an
# object store), the original a sandboxed child reads (docs_app.storage). Inside DATA_DIR, so the children's sandbox
# hides all but the one file each is given.
SPOOL_DIR = DATA_DIR / "spool"

# The audit chain's HMAC key and the file its head is anchored in live outside the data directory and the
# database (docs_app.keyfile): a copy of either is not enough to rewrite the log unnoticed.
AUDIT_KEY_FILE = Path(env_str("DOCS_AUDIT_KEY_FILE", str(BASE_DIR / "keys" / "audit-hmac.key"))).resolve()
AUDIT_ANCHOR_FILE = Path(env_str("DOCS_AUDIT_ANCHOR_FILE", str(AUDIT_KEY_FILE.parent / "audit-anchors.log"))).resolve()
# At most one anchor line per this many seconds (0: after every event); verify_audit always writes one.
AUDIT_ANCHOR_EVERY_S = env_int("DOCS_AUDIT_ANCHOR_EVERY_S", 60)

PRODUCTION = env_bool("DOCS_PRODUCTION", False)
# Off unless asked for: an office intranet app must not show tracebacks to its users.
DEBUG = env_bool("DOCS_DEBUG", False)


def _secret_key() -> str:
    key = os.environ.get("DOCS_SECRET_KEY", "")
    if key:
        return key
    if PRODUCTION:
        raise ImproperlyConfigured("DOCS_SECRET_KEY must be set in production")
    # Development: a random key kept in the data directory, so sessions survive restarts but no key is
    # ever committed or shared between installations.
    key_file = DATA_DIR / "secret_key"
    if not key_file.exists():
        import secrets

        DATA_DIR.mkdir(parents=True, exist_ok=True)
        key_file.write_text(secrets.token_urlsafe(50))
        key_file.chmod(0o600)
    return key_file.read_text().strip()


SECRET_KEY = _secret_key()
ALLOWED_HOSTS = env_list("DOCS_ALLOWED_HOSTS", "" if PRODUCTION else "localhost,127.0.0.1,[::1]")
if PRODUCTION and not ALLOWED_HOSTS:
    raise ImproperlyConfigured("DOCS_ALLOWED_HOSTS must be set in production")
CSRF_TRUSTED_ORIGINS = env_list("DOCS_CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "axes",
    "docs_app",
]

MIDDLEWARE = [
    # First: nothing below may read a body whose declared size is over the limit (docs_app.request_limits).
    "docs_app.request_limits.RequestBodyLimitMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "docs_app.request_limits.AnonymousBodyLimitMiddleware",
    "docs_app.middleware.ActingMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",
    "docs_app.session_idle.SessionIdleTimeoutMiddleware",
    "docs_app.middleware.SecurityHeadersMiddleware",
    "docs_app.middleware.UnreadableMiddleware",
]

ROOT_URLCONF = "docs_app.urls"
WSGI_APPLICATION = "docs_app.wsgi.application"

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
                "docs_app.web.navigation",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------------------
# The embedded default is SQLite set up for several writing processes (web + workers): WAL so readers never
# block the writer, a busy timeout instead of instant "database is locked", and IMMEDIATE transactions so a
# transaction takes the write lock up front instead of failing on upgrade half-way through. secure_delete
# overwrites erased rows in the file itself: deleting a document must not leave its text in free pages.
DATABASE_URL = env_str("DOCS_DATABASE_URL", f"sqlite:///{DATA_DIR / 'db.sqlite3'}")
_default_db = dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("DOCS_DB_CONN_MAX_AGE", 0))
if _default_db["ENGINE"] == "django.db.backends.sqlite3":
    _default_db["OPTIONS"] = {
        "init_command": (
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON; PRAGMA secure_delete=ON;"
        ),
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
    }
    _test_name = os.environ.get("DOCS_TEST_DATABASE_PATH")
    if _test_name:
        # Tests share one file database with the worker processes they start.
        _default_db["TEST"] = {"NAME": _test_name}
DATABASES = {"default": _default_db}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Auth, sessions, login throttling -------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "library"
LOGOUT_REDIRECT_URL = "login"
SESSION_IDLE_TIMEOUT_S = env_int("DOCS_SESSION_IDLE_MINUTES", 30) * 60
# Idle timeout: docs_app.session_idle logs out a session with no real activity for this long. Saving the
# session on every request would let an open tab's background polling (status JSON, the answer stream) keep
# it alive forever, so only real activity refreshes it; the stored expiry is the backstop.
SESSION_COOKIE_AGE = SESSION_IDLE_TIMEOUT_S
SESSION_SAVE_EVERY_REQUEST = False
# URL names a page calls by itself, without a person doing anything: they neither count as activity nor
# extend the session.
SESSION_IDLE_PASSIVE_URL_NAMES = ["collection_status", "answer_stream"]
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"

# Lock by user name alone: an attacker rotating addresses (or forging X-Forwarded-For, which we never read)
# still hits the per-user limit. axes.W006 ("add ip_address") is silenced on purpose: it warns about
# lockouts keyed on values the attacker controls (user agent, cookies); the account name is the target
# itself. An address counter would hurt here: gunicorn listens on 127.0.0.1 behind the TLS proxy, so every
# request has the same REMOTE_ADDR, and (a) five typos anywhere would lock the whole office out, (b) with
# AXES_RESET_ON_SUCCESS any colleague's good login would wipe every failure count from that address,
# including the counter of the account under attack (tests/integration/test_audit.py pins both halves).
# Failed logins for names that are no account: at most one audit event per this many seconds (docs_app.auth_events).
LOGIN_UNKNOWN_EVENT_EVERY_S = env_int("DOCS_LOGIN_UNKNOWN_EVENT_EVERY_S", 60)
AXES_FAILURE_LIMIT = env_int("DOCS_LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = env_int("DOCS_LOGIN_COOLOFF_MINUTES", 15) / 60
AXES_LOCKOUT_PARAMETERS = ["username"]
AXES_RESET_ON_SUCCESS = True
# The same address the audit log records: REMOTE_ADDR only.
AXES_CLIENT_IP_CALLABLE = "docs_app.web.client_address"
AXES_VERBOSE = False
AXES_LOCKOUT_TEMPLATE = "login.html"  # rendered with `failure_limit` set, status 429
SILENCED_SYSTEM_CHECKS = ["axes.W006"]

# --- Security headers --------------------------------------------------------------------------------
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# Self only: every script, style and font is vendored under static/ (no CDN), and nothing may be fetched from
# another host. Django 5.2 has no CSP support of its own; docs_app.middleware adds this header.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; "
    "font-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)
if PRODUCTION:
    SECURE_SSL_REDIRECT = env_bool("DOCS_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = env_int("DOCS_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = env_bool("DOCS_HSTS_PRELOAD", True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# --- Uploads ------------------------------------------------------------------------------------------
UPLOAD_MAX_FILE_MB = env_int("DOCS_UPLOAD_MAX_FILE_MB", 100)
UPLOAD_MAX_FILES = env_int("DOCS_UPLOAD_MAX_FILES", 500)
# Raised deliberately: a paralegal drops hundreds of contracts at once. The per-file cap above still holds.
DATA_UPLOAD_MAX_NUMBER_FILES = UPLOAD_MAX_FILES
DATA_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
FILE_UPLOAD_TEMP_DIR = None
# Whole request bodies, checked against Content-Length before anything reads them (docs_app.request_limits).
# Everything but the upload route is a small form; an upload carries many files at once.
REQUEST_MAX_BODY_BYTES = env_int("DOCS_REQUEST_MAX_BODY_KB", 1024) * 1024
UPLOAD_REQUEST_MAX_BYTES = env_int("DOCS_UPLOAD_REQUEST_MAX_MB", 2048) * 1024 * 1024
ZIP_MAX_MEMBERS = env_int("DOCS_ZIP_MAX_MEMBERS", 2000)
ZIP_MAX_UNCOMPRESSED_MB = env_int("DOCS_ZIP_MAX_UNCOMPRESSED_MB", 2048)

# --- Ingestion ---------------------------------------------------------------------------------------
INGEST_MAX_PAGES = env_int("DOCS_INGEST_MAX_PAGES", 5000)
INGEST_EXTRACT_TIMEOUT_S = env_int("DOCS_INGEST_EXTRACT_TIMEOUT_S", 300)
INGEST_EXTRACT_MEMORY_MB = env_int("DOCS_INGEST_EXTRACT_MEMORY_MB", 2048)
# The PDF children's sandbox (docs_app.pipeline.sandbox): "auto" (bubblewrap when it can start, else basic),
# "namespaces" (require bubblewrap) or "basic" (environment, limits and seccomp only).
SANDBOX = env_str("DOCS_SANDBOX", "auto")
if SANDBOX not in ("auto", "namespaces", "basic"):
    raise ImproperlyConfigured(f"DOCS_SANDBOX must be auto, namespaces or basic, got {SANDBOX!r}")
INGEST_MAX_ATTEMPTS = env_int("DOCS_INGEST_MAX_ATTEMPTS", 3)
CHUNK_MAX_TOKENS = env_int("DOCS_CHUNK_MAX_TOKENS", 200)
CHUNK_OVERLAP_TOKENS = env_int("DOCS_CHUNK_OVERLAP_TOKENS", 40)
EMBED_BATCH_SIZE = env_int("DOCS_EMBED_BATCH_SIZE", 32)
# auto: bf16 where the CPU has native bf16 and a start-up probe proves it matches fp32 (fp16 on a GPU), else fp32.
EMBED_PRECISION = env_str("DOCS_EMBED_PRECISION", "auto")
EMBED_DEVICE = env_str("DOCS_EMBED_DEVICE", "cpu")  # "cuda" for a GPU
# 0: the cores this process may use, divided among the worker's pool processes.
EMBED_THREADS = env_int("DOCS_EMBED_THREADS", 0)

# --- OCR of pages without a usable text layer (docs_app.pipeline.ocr, services.ocr) ----------------------
OCR_ENABLED = env_bool("DOCS_OCR", True)
# Tesseract's language names joined by "+" ("eng+deu"); each needs Debian's tesseract-ocr-<lang>, which
# scripts/system-deps.sh installs from this same variable. More languages read slower.
OCR_LANGUAGES = env_str("DOCS_OCR_LANGUAGES", "eng")
# Where <lang>.traineddata lie; empty: TESSDATA_PREFIX, else Debian's /usr/share/tesseract-ocr/<version>/tessdata.
OCR_TESSDATA_DIR = env_str("DOCS_OCR_TESSDATA_DIR", "")
OCR_PAGE_TIMEOUT_S = env_int("DOCS_OCR_PAGE_TIMEOUT_S", 60)
# All the scanned pages of one document; with the text pass and embedding it must fit DOCS_TASK_TIME_LIMIT_S.
OCR_DOCUMENT_TIMEOUT_S = env_int("DOCS_OCR_DOCUMENT_TIMEOUT_S", 1200)
OCR_PROCESSES = env_int("DOCS_OCR_PROCESSES", 0)  # 0: as many as the cores this worker may use
# OCR pages read with a lower mean word confidence (0-100) are listed for review in the library.
OCR_LOW_CONFIDENCE = env_int("DOCS_OCR_LOW_CONFIDENCE", 70)

# --- Adapters (swappable by dotted path) -------------------------------------------------------------
EMBEDDER = env_str("DOCS_EMBEDDER", "docs_app.adapters.embeddings.SentenceTransformerEmbedder")
EMBEDDING_MODEL_PATH = env_str("DOCS_EMBEDDING_MODEL_PATH", "")  # empty: the packaged all-MiniLM-L6-v2
VECTOR_STORE = env_str("DOCS_VECTOR_STORE", "docs_app.adapters.vectorstore.ChromaVectorStore")
CHROMA_HOST = env_str("DOCS_CHROMA_HOST", "127.0.0.1")
CHROMA_PORT = env_int("DOCS_CHROMA_PORT", 8765)
CHROMA_COLLECTION = env_str("DOCS_CHROMA_COLLECTION", "chunks")
LLM = env_str("DOCS_LLM", "docs_app.adapters.llm.LlamaCppModel")
LLM_MODEL_PATH = env_str("DOCS_LLM_MODEL_PATH", "")  # empty: the stand-in GGUF assembled into DATA_DIR
LLM_STANDIN_PATH = DATA_DIR / "models" / "gemma-3-270m-standin-q4_k_m.gguf"
LLM_CONTEXT_TOKENS = env_int("DOCS_LLM_CONTEXT_TOKENS", 4096)
LLM_THREADS = env_int("DOCS_LLM_THREADS", max(1, (os.cpu_count() or 2)))
LLM_GPU_LAYERS = env_int("DOCS_LLM_GPU_LAYERS", 0)
LLM_MAX_ANSWER_TOKENS = env_int("DOCS_LLM_MAX_ANSWER_TOKENS", 384)
# Where llama.cpp's loadable backends lie (empty: beside llama-cpp-python's own libraries). Which CPU variant
# runs is proven at worker start by generating in a child (docs_app/adapters/llm_runtime.py) and remembered here:
LLM_BACKEND_DIR = env_str("DOCS_LLM_BACKEND_DIR", "")
LLM_RUNTIME_CACHE = DATA_DIR / "models" / "llm-runtime.json"
LLM_SELFTEST_TIMEOUT_S = env_int("DOCS_LLM_SELFTEST_TIMEOUT_S", 300)
# Passages given to the model per question.
ANSWER_MAX_SOURCES = env_int("DOCS_ANSWER_MAX_SOURCES", 8)
# Runs of one answer that may die (a native crash kills the worker child) before the answer fails for good.
ANSWER_MAX_RUNS = env_int("DOCS_ANSWER_MAX_RUNS", 2)
# How long one Server-Sent Events response relays an answer before it ends (the browser reconnects with
# Last-Event-ID); also the longest a reader waits on an answer that makes no progress.
ANSWER_STREAM_MAX_S = env_int("DOCS_ANSWER_STREAM_MAX_S", 600)
# Back-pressure: at most this many answers waiting or being written at once; the next question is refused with
# "busy, try again" and the number ahead, instead of waiting without bound. An answer still waiting after
# ANSWER_WAIT_MAX_S (no answer worker running, or far too few) is refused the same way by the reconciler.
ANSWER_QUEUE_MAX = env_int("DOCS_ANSWER_QUEUE_MAX", 30)
# ... and refused as well when the answers ahead would take longer than this to write, at the pace answers have
# been written lately (what a crowded CPU box manages is far below what a GPU host does).
ANSWER_WAIT_TARGET_S = env_int("DOCS_ANSWER_WAIT_TARGET_S", 300)
ANSWER_WAIT_MAX_S = env_int("DOCS_ANSWER_WAIT_MAX_S", 900)
# A run's claim on an answer (a Redis lease, renewed by a thread every quarter of it while the run's process
# lives). A run on a lost host is taken over once its lease lapses.
ANSWER_LEASE_S = env_int("DOCS_ANSWER_LEASE_S", 60)

# --- Reliability: runs, heartbeats, the reconciler ---------------------------------------------------------
# The name this machine's runs record in their claims. A claim naming this host and a process that is gone is
# taken over at once; one naming another host only when its heartbeat (or lease) has lapsed.
HOST_ID = env_str("DOCS_HOST_ID", socket.gethostname())
# An ingestion run writes a heartbeat to its document every WORK_HEARTBEAT_S; with none for WORK_STALE_S the run
# is dead (its host is gone) and the reconciler queues the document again.
WORK_HEARTBEAT_S = env_int("DOCS_WORK_HEARTBEAT_S", 15)
WORK_STALE_S = env_int("DOCS_WORK_STALE_S", 90)
# `manage.py reconcile --loop` (the Procfile's reconciler) runs a pass this often; work the database says is
# unfinished and that no queue holds is queued again once it is older than RECONCILE_GRACE_S.
RECONCILE_EVERY_S = env_int("DOCS_RECONCILE_EVERY_S", 30)
RECONCILE_GRACE_S = env_int("DOCS_RECONCILE_GRACE_S", 30)
# How often the reconciler compares the vector index with the database (check_index) and repairs drift.
INDEX_CHECK_EVERY_S = env_int("DOCS_INDEX_CHECK_EVERY_S", 900)
# How long a vector-store call waits for the Chroma server to come back (a restart) before it fails.
VECTOR_STORE_RETRY_S = env_int("DOCS_VECTOR_STORE_RETRY_S", 180)

# --- Retrieval ----------------------------------------------------------------------------------------
# Passages one keyword query may score (estimated from the index's term counts): past it, its most common
# terms are left out (docs_app/selectors/keywords.py). 0: never.
KEYWORD_MAX_SCORED = env_int("DOCS_KEYWORD_MAX_SCORED", 20000)
# Dense search over at most this many passages (the documents a question names, a reader of a few matters)
# compares the stored vectors directly instead of asking Chroma (docs_app/selectors/retrieval.py): ~4 µs a
# passage here, where a filtered Chroma query cost 65 ms at 100k chunks and ~290 ms at 1M. 0: always Chroma.
DENSE_EXACT_MAX_PASSAGES = env_int("DOCS_DENSE_EXACT_MAX_PASSAGES", 12000)

# --- Audit ------------------------------------------------------------------------------------------
# Time the audit page may spend verifying the chain per load (new events first, then a slice of the pass that
# re-verifies old ones); `verify_audit` checks everything. See docs_app/services/audit_verification.py.
AUDIT_PAGE_VERIFY_MS = env_int("DOCS_AUDIT_PAGE_VERIFY_MS", 100)

# --- Messaging ---------------------------------------------------------------------------------------
REDIS_URL = env_str("DOCS_REDIS_URL", "redis://127.0.0.1:6379/0")
CELERY_BROKER_URL = REDIS_URL
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
# A task is acknowledged only after it finished, and a worker that dies mid-task hands the message back:
# together with idempotent tasks this means a crash costs a retry, never a lost document.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Redis redelivers an unacknowledged message after this long; it must exceed the longest task.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env_int("DOCS_VISIBILITY_TIMEOUT_S", 3600)}
CELERY_TASK_DEFAULT_QUEUE = "ingest"
CELERY_TASK_ROUTES = {
    "workers.tasks.document_ingest_task": {"queue": "ingest"},
    "workers.tasks.answer_generate_task": {"queue": "answer"},
}
CELERY_TASK_TIME_LIMIT = env_int("DOCS_TASK_TIME_LIMIT_S", 1800)
CELERY_TASK_SOFT_TIME_LIMIT = CELERY_TASK_TIME_LIMIT - 60
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

# --- Static files, i18n -------------------------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"
STATICFILES_DIRS = [BASE_DIR / "static"]


def files_storage(kind: str) -> dict[str, object]:
    """Where the stored originals live: `local` (MEDIA_ROOT: a local disk, or a shared mount for several hosts) or
    `s3`, an S3-compatible object store (MinIO, Ceph, AWS) through django-storages. Credentials come from the
    environment (DOCS_S3_ACCESS_KEY_ID / DOCS_S3_SECRET_ACCESS_KEY, else boto3's own chain), never from a file here."""
    if kind == "local":
        return {"BACKEND": "django.core.files.storage.FileSystemStorage"}
    if kind != "s3":
        raise ImproperlyConfigured(f"DOCS_STORAGE must be 'local' or 's3', got {kind!r}")
    bucket = env_str("DOCS_S3_BUCKET", "")
    if not bucket:
        raise ImproperlyConfigured("DOCS_STORAGE=s3 needs DOCS_S3_BUCKET")
    # boto3 otherwise asks the cloud's instance metadata address for credentials and region when none are given:
    # a connection off the premises. An operator on a cloud host with an instance role may turn it back on.
    os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
    from botocore.config import Config

    return {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": {
        "bucket_name": bucket,
        "endpoint_url": env_str("DOCS_S3_ENDPOINT_URL", "") or None,
        "region_name": env_str("DOCS_S3_REGION", "us-east-1"),
        "access_key": env_str("DOCS_S3_ACCESS_KEY_ID", "") or None,
        "secret_key": env_str("DOCS_S3_SECRET_ACCESS_KEY", "") or None,
        "location": env_str("DOCS_S3_PREFIX", ""),
        "verify": env_str("DOCS_S3_CA_BUNDLE", "") or None,
        # Never replace an object: names are generated, and a restore must not overwrite an original.
        "file_overwrite": False,
        # Objects stay private to the bucket's owner; the app never hands out URLs to them (the viewer streams).
        "default_acl": None,
        "querystring_auth": True,
        # A file read through django-storages' own file object is spooled whole; past this it goes to disk, not
        # memory (docs_app.storage streams with boto3 directly where it can).
        "max_memory_size": 4 * 1024 * 1024,
        # Path-style addressing: an office's MinIO answers on one host name, not a name per bucket. Timeouts short
        # enough that an unreachable store fails a request instead of hanging a web worker.
        "client_config": Config(
            s3={"addressing_style": env_str("DOCS_S3_ADDRESSING_STYLE", "path")}, signature_version="s3v4",
            connect_timeout=env_int("DOCS_S3_CONNECT_TIMEOUT_S", 5), read_timeout=env_int("DOCS_S3_READ_TIMEOUT_S", 60),
            retries={"max_attempts": 3, "mode": "standard"},
        ),
    }}


# `local` or `s3` (see files_storage); docs_app.storage is the one module that reads and writes the originals.
FILES_STORAGE = env_str("DOCS_STORAGE", "local")
STORAGES = {
    "default": files_storage(FILES_STORAGE),
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("DOCS_LOG_LEVEL", "INFO")},
    "loggers": {"chromadb": {"level": "WARNING"}, "httpx": {"level": "WARNING"}},
}
