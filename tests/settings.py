"""Test settings: every run gets its own data directory, database file and free ports, so the services the
suite starts (tests/conftest.py) never collide with a running app or another test run."""

import os
import tempfile
from pathlib import Path

from docs_app.devservices import free_port

_RUN_DIR = Path(os.environ.get("DOCS_TEST_RUN_DIR") or tempfile.mkdtemp(prefix="docs-test-"))
os.environ["DOCS_TEST_RUN_DIR"] = str(_RUN_DIR)
os.environ.setdefault("DOCS_DATA_DIR", str(_RUN_DIR / "data"))
os.environ.setdefault("DOCS_TEST_DATABASE_PATH", str(_RUN_DIR / "test.sqlite3"))
os.environ.setdefault("DOCS_DATABASE_URL", f"sqlite:///{_RUN_DIR / 'unused.sqlite3'}")
os.environ.setdefault("DOCS_REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")
os.environ.setdefault("DOCS_CHROMA_PORT", str(free_port()))
os.environ.setdefault("DOCS_LLM_CONTEXT_TOKENS", "2048")
os.environ.setdefault("DOCS_LLM_MAX_ANSWER_TOKENS", "48")
# An answer test fails within about two minutes instead of waiting out a stuck stream.
os.environ.setdefault("DOCS_ANSWER_STREAM_MAX_S", "120")
os.environ.setdefault("DOCS_AUDIT_KEY_FILE", str(_RUN_DIR / "keys" / "audit-hmac.key"))
os.environ.setdefault("DOCS_AUDIT_ANCHOR_EVERY_S", "0")
# Every failed login recorded, so tests see their own; test_audit.py turns the aggregation on where it is pinned.
os.environ.setdefault("DOCS_LOGIN_UNKNOWN_EVENT_EVERY_S", "0")

from docs_app.keyfile import key_create  # noqa: E402

key_create(Path(os.environ["DOCS_AUDIT_KEY_FILE"]))
# Lost runs noticed in seconds, not minutes, so the fault tests can wait for the takeover (tests/integration/
# test_faults.py); the workers the suite starts inherit these.
os.environ.setdefault("DOCS_WORK_HEARTBEAT_S", "2")
os.environ.setdefault("DOCS_WORK_STALE_S", "12")
os.environ.setdefault("DOCS_ANSWER_LEASE_S", "12")
os.environ.setdefault("DOCS_RECONCILE_GRACE_S", "3")

from docs_app.settings import *  # noqa: E402,F403

# Fast hashing: tests create many users; production keeps Django's default.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
