"""Backups that restore (issue 15): one directory holding a consistent snapshot of the database, the stored
originals it names, and a manifest; restored into an empty instance, which rebuilds its Chroma index from the
vectors the Chunk rows keep (Chroma itself is never copied: it is derived).

A backup directory:
  manifest.json       written last (its presence marks a complete backup): format, engine, counts, the audit
                      head (id and hash) and a fingerprint of the audit key, every stored file with size and SHA-256
  database.sqlite3    SQLite: a copy taken with SQLite's online backup API (consistent while others write)
  database.pgdump     PostgreSQL: `pg_dump --format=custom` of one snapshot, the same one the file list is read in
  files/<stored name> the originals of the documents in that snapshot

Not in it, on purpose: the audit key (back it up apart from the database: whoever holds both can rewrite the
chain; without it the restored chain cannot be verified), the anchor file (it lives beside the key), page renders
(a cache, rebuilt on demand), Redis (messages only) and Chroma (rebuilt). Backup and restore are audited events.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection, transaction

from docs_app.models import AuditEvent, Chunk, Document
from docs_app.services.audit import Action, audit_key, audit_record, audit_verify
from docs_app.services.index import index_rebuild
from docs_app.storage import store_description, stored_file_open, stored_file_save, stored_files_empty

FORMAT = 1
MANIFEST = "manifest.json"
SQLITE_FILE = "database.sqlite3"
PG_FILE = "database.pgdump"
FILES_DIR = "files"
_COPY_CHUNK = 1024 * 1024


class BackupError(Exception):
    pass


@dataclass(frozen=True)
class BackupReport:
    path: Path
    documents: int
    chunks: int
    files: int
    missing_files: list[int]
    audit_head_id: int | None
    audit_head_hash: str
    bytes: int
    seconds: float


@dataclass(frozen=True)
class RestoreReport:
    documents: int
    chunks: int
    files: int
    vectors: int
    audit_events: int
    anchors_set_aside: Path | None
    seconds: float


def audit_key_fingerprint() -> str:
    """Names the audit key without revealing it: a restore refuses a key other than the one the chain was
    written with (every keyed event would fail verification)."""
    return hmac.new(audit_key(), b"private-docs backup key fingerprint", hashlib.sha256).hexdigest()[:16]


# --- backup ------------------------------------------------------------------------------------------------

def backup_create(*, target: Path) -> BackupReport:
    """Snapshot the database and copy the stored files it names into `target` (absent or empty)."""
    started = time.monotonic()
    target = target.resolve()
    if target.exists() and any(target.iterdir()):
        raise BackupError(f"{target} is not empty: a backup goes into a new directory")
    target.mkdir(mode=0o700, parents=True, exist_ok=True)
    fingerprint = audit_key_fingerprint()  # fails before anything is written when the key is missing
    # Recorded first, so the snapshot holds the event: the restored chain shows the backup it came from.
    audit_record(action=Action.BACKUP, target_type="backup", details={"engine": connection.vendor})
    with _snapshot(target) as query:
        documents = query("SELECT id, stored_name, sha256, size_bytes FROM docs_app_document ORDER BY id")
        chunks = int(query("SELECT count(*) FROM docs_app_chunk")[0][0])
        head = query("SELECT id, hash FROM docs_app_auditevent ORDER BY id DESC LIMIT 1")
        events = int(query("SELECT count(*) FROM docs_app_auditevent")[0][0])
        migrations = [f"{app}.{name}" for app, name in query("SELECT app, name FROM django_migrations ORDER BY id")]
    head_id, head_hash = (int(head[0][0]), str(head[0][1])) if head else (None, "")
    # The snapshot is taken: copy the files its documents name. A file erased since (a deletion in between)
    # is listed as missing; its document's row is in the snapshot, its bytes are gone on purpose.
    files_dir = target / FILES_DIR
    files_dir.mkdir(mode=0o700)
    files: list[dict[str, Any]] = []
    missing: list[int] = []
    for document_id, stored_name, sha256, size in documents:
        digest = _copy_from_storage(str(stored_name), files_dir / str(stored_name))
        if digest is None:
            missing.append(int(document_id))
            continue
        if digest != sha256:
            raise BackupError(f"stored file of document #{document_id} does not match its SHA-256")
        files.append({"document_id": int(document_id), "name": str(stored_name), "sha256": digest,
                      "size": int(size)})
    manifest = {
        "format": FORMAT,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "engine": connection.vendor,
        "database": SQLITE_FILE if connection.vendor == "sqlite" else PG_FILE,
        "migrations": migrations,
        "counts": {"documents": len(documents), "chunks": chunks, "audit_events": events},
        "audit": {"head_id": head_id, "head_hash": head_hash, "key_fingerprint": fingerprint},
        "files": files,
        "missing_files": missing,
    }
    _write_private(target / MANIFEST, json.dumps(manifest, indent=1).encode())
    size = sum(p.stat().st_size for p in target.rglob("*") if p.is_file())
    return BackupReport(path=target, documents=len(documents), chunks=chunks, files=len(files), missing_files=missing,
                        audit_head_id=head_id, audit_head_hash=head_hash,
                        bytes=size, seconds=time.monotonic() - started)


Query = Callable[[str], list[tuple[Any, ...]]]


@contextmanager
def _snapshot(target: Path) -> Iterator[Query]:
    """Writes the database snapshot into `target` and yields a query function that reads that same snapshot."""
    if connection.vendor == "sqlite":
        copy = target / SQLITE_FILE
        source = sqlite3.connect(str(settings.DATABASES["default"]["NAME"]), timeout=60)
        destination = sqlite3.connect(str(copy))
        try:
            source.backup(destination)  # the online backup API: a consistent copy while workers write
        finally:
            source.close()
        os.chmod(copy, 0o600)
        try:
            yield lambda sql: destination.execute(sql).fetchall()
        finally:
            destination.close()
    elif connection.vendor == "postgresql":
        # One REPEATABLE READ transaction exports its snapshot; pg_dump dumps exactly that snapshot, and the file
        # list and the audit head are read in it too.
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            cursor.execute("SELECT pg_export_snapshot()")
            snapshot_id = str(cursor.fetchone()[0])
            _pg_tool("pg_dump", "--format=custom", "--no-owner", "--no-acl", f"--snapshot={snapshot_id}",
                     f"--file={target / PG_FILE}")
            os.chmod(target / PG_FILE, 0o600)

            def run(sql: str) -> list[tuple[Any, ...]]:
                cursor.execute(sql)
                return list(cursor.fetchall())

            yield run
    else:
        raise BackupError(f"no backup for database engine {connection.vendor!r}")


def _copy_from_storage(name: str, destination: Path) -> str | None:
    """Copy one stored file through the storage API; its SHA-256, or None when it is not there."""
    source = stored_file_open(name)
    if source is None:
        return None
    digest = hashlib.sha256()
    fd = os.open(destination, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with source, os.fdopen(fd, "wb") as out:
        while block := source.read(_COPY_CHUNK):
            digest.update(block)
            out.write(block)
    return digest.hexdigest()


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


# --- restore -----------------------------------------------------------------------------------------------

def backup_manifest(source: Path) -> dict[str, Any]:
    try:
        manifest = dict(json.loads((source / MANIFEST).read_text()))
    except FileNotFoundError as exc:
        raise BackupError(f"{source} holds no {MANIFEST}: not a backup, or one that did not finish") from exc
    if manifest.get("format") != FORMAT:
        raise BackupError(f"backup format {manifest.get('format')!r} is not {FORMAT}")
    return manifest


def backup_restore_database(*, source: Path) -> dict[str, Any]:
    """First step of a restore: load the snapshot into this instance's database, which must be empty (SQLite: no
    file, or one without documents, users or audit events; PostgreSQL: a new database, not migrated). The caller
    then runs `migrate` (a backup of an older version gets the newer migrations) and `backup_restore_finish`."""
    manifest = backup_manifest(source)
    if manifest["engine"] != connection.vendor:
        raise BackupError(f"the backup is of a {manifest['engine']} database; this instance uses {connection.vendor}")
    if manifest["audit"]["key_fingerprint"] != audit_key_fingerprint():
        raise BackupError("the audit key here is not the one the backup's chain was written with: restore the key "
                          f"file ({settings.AUDIT_KEY_FILE}) from its own backup first")
    _require_empty_instance()
    if connection.vendor == "sqlite":
        connection.close()
        backup = sqlite3.connect(str(source / SQLITE_FILE))
        live = sqlite3.connect(str(settings.DATABASES["default"]["NAME"]))
        try:
            backup.backup(live)
        finally:
            backup.close()
            live.close()
    else:
        connection.close()
        _pg_tool("pg_restore", "--no-owner", "--no-acl", "--single-transaction", "--exit-on-error",
                 str(source / PG_FILE))
    return manifest


def backup_restore_finish(*, source: Path) -> RestoreReport:
    """After the database is in and migrated: the stored files, the vector index rebuilt from the Chunk rows,
    the audit chain checked against the backup's head, and the restore recorded."""
    started = time.monotonic()
    manifest = backup_manifest(source)
    for entry in manifest["files"]:
        _restore_file(source / FILES_DIR / entry["name"], name=entry["name"], sha256=entry["sha256"])
    head = AuditEvent.objects.order_by("-id").values_list("id", "hash").first()
    expected = manifest["audit"]
    if (head[0] if head else None, head[1] if head else "") != (expected["head_id"], expected["head_hash"]):
        raise BackupError(f"the restored audit head {head} is not the backup's ({expected['head_id']}, "
                          f"{expected['head_hash']})")
    chain = audit_verify(AuditEvent.objects.order_by("id").iterator(chunk_size=2000))
    if not chain.ok:
        raise BackupError(f"the restored audit chain is broken at event #{chain.first_broken_id}: {chain.problem}")
    # Heads anchored here after the backup was taken name events the restore does not have: the chain really was
    # cut back to the backup. That anchor file is kept, renamed, and the restore event says so.
    aside = None if audit_verify().ok else _anchors_set_aside()
    vectors = index_rebuild()
    audit_record(action=Action.RESTORE, target_type="backup", details={
        "backup_created_at": manifest["created_at"], "head_id": expected["head_id"],
        "head_hash": expected["head_hash"], "files": len(manifest["files"]),
        "missing_files": manifest["missing_files"], "anchors_set_aside": str(aside) if aside else ""})
    return RestoreReport(documents=Document.objects.count(), chunks=Chunk.objects.count(),
                         files=len(manifest["files"]), vectors=vectors, audit_events=AuditEvent.objects.count(),
                         anchors_set_aside=aside, seconds=time.monotonic() - started)


def _require_empty_instance() -> None:
    tables = set(connection.introspection.table_names())
    if connection.vendor == "postgresql" and tables:
        raise BackupError("the database is not empty: restore into a new database (created, not migrated)")
    if "docs_app_document" in tables:
        from django.contrib.auth.models import User

        if Document.objects.exists() or AuditEvent.objects.exists() or User.objects.exists():
            raise BackupError("this instance already holds data: restore only fills an empty one")
    if not stored_files_empty():
        raise BackupError(f"the file store ({store_description()}) is not empty")


def _restore_file(path: Path, *, name: str, sha256: str) -> None:
    digest = hashlib.sha256()
    with path.open("rb") as source:
        while block := source.read(_COPY_CHUNK):
            digest.update(block)
    if digest.hexdigest() != sha256:
        raise BackupError(f"backup file {path.name} does not match the SHA-256 in the manifest")
    with path.open("rb") as source:
        try:
            stored_file_save(name, source)
        except FileExistsError as exc:
            raise BackupError(str(exc)) from exc


def _anchors_set_aside() -> Path | None:
    anchors = Path(settings.AUDIT_ANCHOR_FILE)
    if not anchors.exists():
        return None
    aside = anchors.with_name(f"{anchors.name}.before-restore-{datetime.now(UTC):%Y%m%dT%H%M%SZ}")
    anchors.rename(aside)
    return aside


# --- PostgreSQL client tools ---------------------------------------------------------------------------------

def _pg_tool(tool: str, *args: str) -> None:
    """Run pg_dump or pg_restore against this instance's database; the password goes in the environment."""
    db = settings.DATABASES["default"]
    env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
    env.update({"PGHOST": str(db.get("HOST") or ""), "PGPORT": str(db.get("PORT") or ""),
                "PGUSER": str(db.get("USER") or ""), "PGPASSWORD": str(db.get("PASSWORD") or ""),
                "PGDATABASE": str(db["NAME"])})
    argv = [_pg_binary(tool), *args]
    if tool == "pg_restore":
        argv.insert(1, f"--dbname={db['NAME']}")
    done = subprocess.run(argv, env={k: v for k, v in env.items() if v}, capture_output=True, text=True,
                          check=False)
    if done.returncode != 0:
        raise BackupError(f"{tool} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")


def _pg_binary(tool: str) -> str:
    """The newest installed PostgreSQL's own tool (a dump must come from a pg_dump at least as new as the
    server), else the one on PATH."""
    versions = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{tool}"), key=lambda p: int(p.parts[-3])
                      if p.parts[-3].isdigit() else 0)
    if versions:
        return str(versions[-1])
    found = shutil.which(tool)
    if found is None:
        raise BackupError(f"{tool} not found: install the PostgreSQL client tools")
    return found
