"""Backup and restore of a filled instance, and what one host holds: disk per chunk, RAM per process.

    .venv/bin/python bench/backup.py --pdfs ../shared/data/legal/cuad_pdf --limit 50

Ingests the PDFs through the real queue and workers, asks one question (so a worker process holds both the
embedder and the language model), then measures: the resident memory of every process of the instance (worker
parent and pool processes, Chroma, Redis), the database and Chroma sizes per chunk, `manage.py backup` (seconds,
bytes) and `manage.py restore` into a fresh instance with its own Chroma server (seconds, vectors). SQLite, or the
database DOCS_DATABASE_URL names (then the restore target is DOCS_BENCH_RESTORE_DATABASE_URL, a new empty
database). The last line is one JSON object with all figures.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psutil

from docs_app.devservices import REPO, Services, configure, free_port, services_running


def _tree_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


def _processes() -> dict[str, list[float]]:
    """Resident MB of each process this one started, by role."""
    roles: dict[str, list[float]] = {}
    for proc in psutil.Process().children(recursive=True):
        try:
            cmd = " ".join(proc.cmdline())
            rss = proc.memory_info().rss / 2**20
        except psutil.Error:
            continue
        if "celery" in cmd:
            role = "worker pool process" if proc.parent() and "celery" in " ".join(proc.parent().cmdline()) \
                else "worker parent"
        elif "chroma" in cmd:
            role = "chroma"
        elif "redis-server" in cmd:
            role = "redis"
        else:
            role = cmd.split()[0].rsplit("/", 1)[-1]
        roles.setdefault(role, []).append(round(rss, 1))
    return roles


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pdfs", type=Path, required=True)
    parser.add_argument("--limit", type=int, default=50)
    parser.add_argument("--question", default="What is the term of the agreement and when does it commence?")
    args = parser.parse_args()
    files = sorted(p for p in args.pdfs.rglob("*") if p.suffix.lower() == ".pdf")[: args.limit]
    if not files:
        sys.exit(f"no PDFs under {args.pdfs}")

    workdir = Path(tempfile.mkdtemp(prefix="bench-backup-"))
    configure(workdir, **(
        {"DOCS_DATABASE_URL": os.environ["DOCS_DATABASE_URL"]} if "DOCS_DATABASE_URL" in os.environ else {}))
    key = Path(os.environ["DOCS_AUDIT_KEY_FILE"])  # configure made it
    import django
    from django.core.management import call_command

    django.setup()
    from django.conf import settings
    from django.db import connection

    call_command("migrate", verbosity=0)
    with services_running(workdir, concurrency=2):
        from django.contrib.auth.models import User

        from bench.corpus import corpus_ingest
        from docs_app.models import Answer, Chunk, Collection, DocumentStatus, Grant, Role
        from docs_app.services.actor import Actor
        from docs_app.services.answering import conversation_start

        collection = Collection.objects.create(name="bench")
        user = User.objects.create_user("bench")
        Grant.objects.create(collection=collection, user=user, role=Role.VIEWER)
        started = time.perf_counter()
        documents = corpus_ingest(collection, files, poll_s=0.5)
        ingest_s = time.perf_counter() - started
        answer = conversation_start(actor=Actor(user=user), text=args.question, collection_ids=None)
        while not Answer.objects.get(pk=answer.pk).is_finished:
            time.sleep(0.5)
        memory = _processes()
        chunks = Chunk.objects.count()
        ready = documents.filter(status=DocumentStatus.READY).count()
        pages = sum(documents.values_list("page_count", flat=True).exclude(page_count=None))
        if connection.vendor == "sqlite":
            call_command("reindex", verbosity=0)  # compact the keyword index, as after a day's work
            database_bytes = sum(Path(f"{settings.DATABASES['default']['NAME']}{s}").stat().st_size
                                 for s in ("", "-wal") if Path(f"{settings.DATABASES['default']['NAME']}{s}").exists())
        else:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_database_size(current_database())")
                database_bytes = int(cursor.fetchone()[0])
        chroma_bytes = _tree_bytes(workdir / "chroma")
        files_bytes = _tree_bytes(Path(settings.MEDIA_ROOT))

        backup_dir = workdir / "backup"
        t0 = time.perf_counter()
        call_command("backup", str(backup_dir), verbosity=0, stdout=open(os.devnull, "w"))  # noqa: SIM115
        backup_s = time.perf_counter() - t0
        backup_bytes = _tree_bytes(backup_dir)

    fresh = workdir / "fresh"
    (fresh / "keys").mkdir(parents=True)
    shutil.copy2(key, fresh / "keys" / "audit-hmac.key")
    chroma_port = free_port()
    env = dict(os.environ, DOCS_DATA_DIR=str(fresh / "data"), DOCS_CHROMA_PORT=str(chroma_port),
               DOCS_AUDIT_KEY_FILE=str(fresh / "keys" / "audit-hmac.key"),
               DOCS_AUDIT_ANCHOR_FILE=str(fresh / "keys" / "audit-anchors.log"),
               DOCS_DATABASE_URL=os.environ.get("DOCS_BENCH_RESTORE_DATABASE_URL",
                                                f"sqlite:///{fresh / 'db.sqlite3'}"))
    services = Services(log_dir=fresh / "logs", env=env)
    try:
        services.chroma(port=chroma_port, path=fresh / "chroma")
        t0 = time.perf_counter()
        restored = subprocess.run([sys.executable, str(REPO / "manage.py"), "restore", str(backup_dir)], env=env,
                                  capture_output=True, text=True, check=False)
        restore_s = time.perf_counter() - t0
    finally:
        services.stop()
    if restored.returncode != 0:
        sys.exit(f"restore failed: {restored.stderr[-2000:]}")

    figures = {
        "engine": connection.vendor,
        "documents": len(files), "ready": ready, "pages": pages, "chunks": chunks,
        "ingest_s": round(ingest_s, 1),
        "database_mb": round(database_bytes / 1e6, 1), "chroma_mb": round(chroma_bytes / 1e6, 1),
        "stored_files_mb": round(files_bytes / 1e6, 1),
        "chunks_per_gb_database_and_chroma": round(chunks / ((database_bytes + chroma_bytes) / 1e9)),
        "backup_s": round(backup_s, 2), "backup_mb": round(backup_bytes / 1e6, 1),
        "restore_s_including_process_start": round(restore_s, 2),
        "restore_output": restored.stdout.strip().splitlines(),
        "rss_mb_by_role": memory,
    }
    print(json.dumps(figures))
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
