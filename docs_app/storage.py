"""Where files live: stored originals behind Django's default storage (MEDIA_ROOT on local disk; a shared mount
serves several hosts), and the page-render cache under PAGE_CACHE_DIR. Nothing else builds these paths.

The sandboxed children open files by path, so the storage must be one with local paths (`Storage.path`).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import IO

from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage

from docs_app.models import Document


def document_file_path(document: Document) -> Path:
    return Path(default_storage.path(document.stored_name))


def page_cache_dir(document: Document) -> Path:
    return Path(settings.PAGE_CACHE_DIR) / str(document.pk)


def incoming_file() -> tuple[int, Path]:
    """A private temp file next to the store (so keeping it is a rename): an open descriptor and its path."""
    root = Path(default_storage.path(""))
    root.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=root, prefix=".incoming-", suffix=".part")
    return fd, Path(name)


def incoming_keep(incoming: Path) -> tuple[str, Path]:
    """Move a checked incoming file into the store under a generated name: the user's file name never reaches
    the file system. Returns the stored name and its path."""
    stored_name = f"{uuid.uuid4().hex}.pdf"
    path = Path(default_storage.path(stored_name))
    os.replace(incoming, path)
    return stored_name, path


def document_files_erase(*, file_path: Path, cache_dir: Path) -> None:
    file_path.unlink(missing_ok=True)
    shutil.rmtree(cache_dir, ignore_errors=True)


# --- Stored originals by name, through the storage API (backup and restore) --------------------------------------

def stored_file_open(stored_name: str) -> IO[bytes] | None:
    """The stored original for reading, or None when it is not there (erased)."""
    if not default_storage.exists(stored_name):
        return None
    return default_storage.open(stored_name, "rb")


def stored_file_save(stored_name: str, source: IO[bytes]) -> None:
    """Store an original under the name its Document row has; refuses to overwrite or rename one."""
    if default_storage.exists(stored_name):
        raise FileExistsError(f"the file store already holds {stored_name}")
    saved = default_storage.save(stored_name, File(source, name=stored_name))
    if saved != stored_name:
        raise FileExistsError(f"the file store renamed {stored_name} to {saved}")


def stored_files_empty() -> bool:
    """True when the store holds no original (a new instance, or one a restore may fill)."""
    if not default_storage.exists(""):
        return True
    _dirs, files = default_storage.listdir("")
    return not [name for name in files if not name.startswith(".incoming-")]
