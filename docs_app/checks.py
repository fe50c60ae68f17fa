"""Start-up checks that `manage.py check`, `migrate` and every process start (DocsAppConfig.ready) report.

Data files are private to the app's user (issue 10, item 5): the data directory must be mode 0700 so no other
local account can read the database, its WAL, the stored PDFs, Chroma's or Redis's files, whatever mode an
older version or a restored backup gave the files inside it.
"""

from __future__ import annotations

import logging
import stat
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Tags, Warning, register

log = logging.getLogger("docs_app.checks")


def _private_paths() -> list[Path]:
    # The stored files and renders may live outside the data directory (a shared mount: DOCS_FILES_DIR,
    # DOCS_PAGE_CACHE_DIR); they hold the same confidential bytes.
    paths = [Path(settings.DATA_DIR), Path(settings.MEDIA_ROOT), Path(settings.PAGE_CACHE_DIR)]
    database = settings.DATABASES["default"]
    if database["ENGINE"].endswith("sqlite3"):
        paths.append(Path(str(database["NAME"])).parent)
    return paths


def _open_to_others(path: Path) -> bool:
    try:
        return bool(path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO))
    except FileNotFoundError:
        return False


@register(Tags.security)
def data_directory_private(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    return [
        Warning(f"{path} is readable by other local users (mode {stat.S_IMODE(path.stat().st_mode):o}).",
                hint=f"chmod 700 {path}  (scripts/run.sh does this; every app process creates files 0600)",
                id="docs_app.W001")
        for path in dict.fromkeys(_private_paths()) if _open_to_others(path)
    ]


def data_directory_warn() -> None:
    """The same check, logged by every process at start (gunicorn and Celery run no system checks)."""
    for message in data_directory_private():
        log.warning("%s %s", message.msg, message.hint)
