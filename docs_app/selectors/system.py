"""The system status page's probes (staff only): Redis and the queues, workers, Chroma, the loaded model, OCR,
disk."""

from __future__ import annotations

import json
import os
import shutil
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
from django.conf import settings
from django.db.models import Sum

from docs_app.models import Document
from docs_app.pipeline.pdf_ocr import OcrUnavailable
from docs_app.selectors.library import documents_count_by_status, pages_to_review
from docs_app.services.model_status import EMBEDDER_STATUS_KEY, MODEL_STATUS_KEY
from docs_app.services.ocr import ocr_options
from docs_app.storage import store_description
from workers.celery import app

QUEUES = ("ingest", "answer")
_PROBE_TIMEOUT_S = 2.0


@dataclass
class SystemStatus:
    redis_ok: bool = False
    redis_error: str = ""
    queue_depth: dict[str, int | None] = field(default_factory=dict)
    workers: list[str] = field(default_factory=list)
    chroma_ok: bool = False
    chroma_error: str = ""
    model: dict[str, Any] | None = None
    embedders: list[dict[str, Any]] = field(default_factory=list)  # one per worker process
    documents_by_status: dict[str, int] = field(default_factory=dict)
    disk_total: int = 0
    disk_used: int = 0
    disk_free: int = 0
    media_bytes: int = 0
    store: str = ""
    page_cache_bytes: int = 0
    # What this machine's settings and files allow (ingest workers on other hosts check their own at each page).
    ocr_languages: str = ""
    ocr_tessdata: str = ""
    ocr_processes: int = 0
    ocr_error: str = ""
    ocr_review_documents: int = 0


def system_status_get() -> SystemStatus:
    """Probes with short timeouts, each on its own: one dead service must not hide the state of the others."""
    status = SystemStatus()
    _probe_redis(status)
    # Workers answer through the broker: with Redis down a ping could only wait for nothing.
    status.workers = _workers_alive() if status.redis_ok else []
    status.chroma_ok, status.chroma_error = _chroma_heartbeat()
    status.documents_by_status = documents_count_by_status(Document.objects.all())
    data_dir = Path(settings.DATA_DIR)
    if data_dir.exists():
        status.disk_total, status.disk_used, status.disk_free = shutil.disk_usage(data_dir)
    # Counted from the rows, not by walking the store: an object store has no directory to walk, and listing a
    # bucket of a million objects on every visit would be slow.
    status.media_bytes = Document.objects.aggregate(total=Sum("size_bytes"))["total"] or 0
    status.store = store_description()
    status.page_cache_bytes = _tree_size(Path(settings.PAGE_CACHE_DIR))
    try:
        options = ocr_options()
        status.ocr_languages, status.ocr_tessdata, status.ocr_processes = (options.languages, options.tessdata,
                                                                           options.processes)
    except OcrUnavailable as exc:
        status.ocr_error = exc.reason
    status.ocr_review_documents = pages_to_review().values("document_id").distinct().count()
    return status


def _probe_redis(status: SystemStatus) -> None:
    client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=_PROBE_TIMEOUT_S,
                                  socket_connect_timeout=_PROBE_TIMEOUT_S)
    try:
        client.ping()
        # Celery's Redis transport keeps each queue as a list named after it.
        status.queue_depth = {queue: int(client.llen(queue)) for queue in QUEUES}
        raw = client.get(MODEL_STATUS_KEY)
        status.model = json.loads(raw) if raw else None
        status.embedders = [json.loads(value) for _, value in sorted(client.hgetall(EMBEDDER_STATUS_KEY).items())]
        status.redis_ok = True
    except (redis.RedisError, ValueError) as exc:
        status.redis_error = str(exc)[:200]
        status.queue_depth = dict.fromkeys(QUEUES)
    finally:
        client.close()


def _workers_alive() -> list[str]:
    try:
        replies = app.control.ping(timeout=1.0) or []
    except Exception:
        return []
    return sorted(name for reply in replies for name in reply)


def _chroma_heartbeat() -> tuple[bool, str]:
    # A plain HTTP probe of the server's heartbeat: the web process opens no vector store client.
    url = f"http://{settings.CHROMA_HOST}:{settings.CHROMA_PORT}/api/v2/heartbeat"
    try:
        with urllib.request.urlopen(url, timeout=_PROBE_TIMEOUT_S) as response:
            return response.status == 200, ""
    except OSError as exc:
        return False, str(exc)[:200]


def _tree_size(root: Path) -> int:
    total = 0
    for directory, _, files in os.walk(root):
        for name in files:
            try:
                total += (Path(directory) / name).stat().st_size
            except OSError:
                continue  # removed while we walked
    return total
