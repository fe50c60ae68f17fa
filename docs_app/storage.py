"""Where files live: stored originals behind Django's default storage, and the page-render cache under
PAGE_CACHE_DIR. Nothing else builds these paths or touches the store.

The store is either a directory (local disk, or a shared mount for several hosts: `Storage.path` works) or an
object store with no local paths (S3-compatible, settings.FILES_STORAGE == "s3"). The sandboxed children open
files by path, so `stored_file_local` hands them the stored file itself when there is one, and otherwise a private
temporary copy under SPOOL_DIR that lives only as long as the child needs it. The page-render cache stays on each
host's own disk either way: it is a cache (see settings.PAGE_CACHE_DIR).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, cast

from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage

from docs_app.models import Document
from docs_app.pipeline.processes import process_alive

COPY_BLOCK = 1024 * 1024  # streamed copies of originals move this much at a time
# Names of spooled copies carry the process id, so a sweep can tell a live process's copy from one a killed
# process left behind (spool_sweep).
_SPOOL_PREFIX = ".spool-"


class StoreError(Exception):
    """The file store did not do what was asked (unreachable, refused); `reason` is said to a person."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def page_cache_dir(document: Document) -> Path:
    """This host's renders of a document: a cache, on each host's own disk unless PAGE_CACHE_DIR is shared."""
    return _renders_dir(document.pk)


def _renders_dir(document_id: int) -> Path:
    return Path(settings.PAGE_CACHE_DIR) / str(document_id)


def _local_root() -> Path | None:
    """The store's directory when it has one; None for an object store."""
    try:
        return Path(default_storage.path(""))
    except NotImplementedError:
        return None


def _s3_object(stored_name: str) -> Any | None:
    """The boto3 object behind a stored name in an S3 store, else None. django-storages' own file object downloads
    a whole object before the first byte is read; boto3's streams, so reads stay in bounded memory."""
    if settings.FILES_STORAGE != "s3":
        return None
    location = str(getattr(default_storage, "location", "") or "").strip("/")
    key = f"{location}/{stored_name}" if location else stored_name
    return getattr(default_storage, "bucket").Object(key)  # noqa: B009 - S3Storage only, untyped


def store_description() -> str:
    """Where the originals are, for messages to an operator."""
    root = _local_root()
    if root is not None:
        return str(root)
    return f"bucket {getattr(default_storage, 'bucket_name', '?')}"


# --- Private temporary files on this host ---------------------------------------------------------------------

def _spool_file(kind: str, *, directory: Path | None = None) -> tuple[int, Path]:
    where = directory or Path(settings.SPOOL_DIR)
    where.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=where, prefix=f"{_SPOOL_PREFIX}{os.getpid()}-{kind}-", suffix=".part")
    return fd, Path(name)


def spool_sweep() -> int:
    """Remove the temporary copies that processes of this host left when they were killed (a SIGKILL runs no
    `finally`): they hold confidential originals. Returns how many were removed."""
    # Only this host's own spool directory: a shared store's directory also holds other hosts' uploads in progress,
    # whose process ids mean nothing here.
    removed = 0
    spool = Path(settings.SPOOL_DIR)
    for path in spool.glob(f"{_SPOOL_PREFIX}*") if spool.is_dir() else ():
        pid = path.name.removeprefix(_SPOOL_PREFIX).split("-", 1)[0]
        if pid.isdigit() and not process_alive(int(pid)):
            path.unlink(missing_ok=True)
            removed += 1
    return removed


# --- Uploads: spooled, checked, then kept under a generated name ------------------------------------------------

def incoming_file() -> tuple[int, Path]:
    """A private temp file for an upload being received: an open descriptor and its path. Next to the store when
    it is a directory (keeping the file is then a rename), else in this host's spool directory."""
    return _spool_file("incoming", directory=_local_root())


def incoming_keep(incoming: Path) -> str:
    """Move a checked incoming file into the store under a generated name, which it returns: the user's file name
    never reaches the store. The incoming file is gone afterwards, kept or not."""
    stored_name = f"{uuid.uuid4().hex}.pdf"
    root = _local_root()
    if root is not None:
        os.replace(incoming, root / stored_name)
        return stored_name
    try:
        with incoming.open("rb") as source:
            stored_file_save(stored_name, source)
    except Exception as exc:  # botocore's errors: the store is unreachable or refused the object
        raise StoreError(f"the file store did not take the file ({type(exc).__name__}); upload it again later") \
            from exc
    finally:
        incoming.unlink(missing_ok=True)
    return stored_name


# --- Stored originals by name, through the storage API ---------------------------------------------------------

def stored_file_open(stored_name: str) -> IO[bytes] | None:
    """The stored original for reading, streamed, or None when it is not there (erased)."""
    obj = _s3_object(stored_name)
    if obj is not None:
        from botocore.exceptions import ClientError

        try:
            return cast(IO[bytes], obj.get()["Body"])
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in {"NoSuchKey", "404"}:
                return None
            raise
    if not default_storage.exists(stored_name):
        return None
    return default_storage.open(stored_name, "rb")


@contextlib.contextmanager
def stored_file_local(stored_name: str) -> Iterator[Path | None]:
    """A path on this host to the stored original, for a sandboxed child; None when the store does not hold it.

    In a directory store it is the stored file itself. From an object store it is a private copy (0600, in
    SPOOL_DIR, which the sandbox hides but for the one file it binds), streamed in blocks so memory stays bounded
    whatever the size, and removed when the block ends, however it ends."""
    root = _local_root()
    if root is not None:
        path = root / stored_name
        yield path if path.is_file() else None
        return
    source = stored_file_open(stored_name)
    if source is None:
        yield None
        return
    fd, copy = _spool_file("original")
    try:
        with source, os.fdopen(fd, "wb") as out:
            shutil.copyfileobj(source, out, COPY_BLOCK)
        yield copy
    finally:
        copy.unlink(missing_ok=True)


def stored_file_save(stored_name: str, source: IO[bytes]) -> None:
    """Store an original under the name its Document row has; refuses to overwrite or rename one."""
    if default_storage.exists(stored_name):
        raise FileExistsError(f"the file store already holds {stored_name}")
    saved = default_storage.save(stored_name, File(source, name=stored_name))
    if saved != stored_name:
        raise FileExistsError(f"the file store renamed {stored_name} to {saved}")


def stored_file_delete(stored_name: str) -> None:
    """Delete a stored original; raises StoreError when the store did not (deleting one that is not there is
    fine). An object store answers a delete without saying whether anything was there, so the answer is checked:
    the object must be gone afterwards."""
    try:
        default_storage.delete(stored_name)
        still_there = default_storage.exists(stored_name)
    except Exception as exc:  # OSError from a disk or mount, botocore's errors from an object store
        raise StoreError(f"the file store could not delete the original ({type(exc).__name__}: {exc})") from exc
    if still_there:
        raise StoreError("the file store still holds the original after deleting it")


def page_renders_erase(*, document_id: int) -> None:
    """This host's renders of a document. Another host's own cache keeps its renders until it is cleared: put
    PAGE_CACHE_DIR on a shared mount when several web hosts must forget an erased document's pages at once."""
    shutil.rmtree(_renders_dir(document_id), ignore_errors=True)


def stored_files_empty() -> bool:
    """True when the store holds no original (a new instance, or one a restore may fill)."""
    if _local_root() is not None and not default_storage.exists(""):
        return True
    _dirs, files = default_storage.listdir("")
    return not [name for name in files if not Path(name).name.startswith((_SPOOL_PREFIX, ".incoming-"))]
