"""Data files are private to the app's user (issue 10, item 5): processes of the app create files 0600 whatever
umask they inherit, and a data directory others can enter is reported at start."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

from tests.data import REPO


def _manage(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCS_")}
    env.update(DJANGO_SETTINGS_MODULE="docs_app.settings", DOCS_DATA_DIR=str(data_dir),
               DOCS_AUDIT_KEY_FILE=str(data_dir.parent / "keys" / "audit.key"))
    return subprocess.run([sys.executable, "manage.py", *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300, check=False,
                          preexec_fn=lambda: os.umask(0o022))  # what a shell hands down


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_database_and_keys_a_fresh_install_creates_are_private(tmp_path: Path) -> None:
    data = tmp_path / "data"
    done = _manage(data, "migrate", "--noinput", "-v0")
    assert done.returncode == 0, done.stderr
    created = [p for p in data.rglob("*")]
    assert data / "db.sqlite3" in created
    assert {str(p.relative_to(tmp_path)): oct(_mode(p)) for p in [data, *created] if _mode(p) & 0o077} == {}


def test_a_data_directory_others_can_read_is_reported_at_start(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    done = _manage(data, "check")
    assert "docs_app.W001" in done.stdout + done.stderr and str(data) in done.stdout + done.stderr
    data.chmod(0o700)
    done = _manage(data, "check")
    assert "docs_app.W001" not in done.stdout + done.stderr, done.stdout + done.stderr


def test_a_shared_file_store_others_can_read_is_reported_at_start(tmp_path: Path) -> None:
    """The stored originals on a shared mount (DOCS_FILES_DIR) hold the same confidential bytes as the data
    directory, wherever they are mounted."""
    data, shared = tmp_path / "data", tmp_path / "mnt" / "files"
    data.mkdir(mode=0o700)
    shared.mkdir(parents=True)
    shared.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCS_")}
    env.update(DJANGO_SETTINGS_MODULE="docs_app.settings", DOCS_DATA_DIR=str(data), DOCS_FILES_DIR=str(shared),
               DOCS_AUDIT_KEY_FILE=str(tmp_path / "keys" / "audit.key"))
    done = subprocess.run([sys.executable, "manage.py", "check"], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300, check=False)
    assert "docs_app.W001" in done.stdout + done.stderr and str(shared) in done.stdout + done.stderr
