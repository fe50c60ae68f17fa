"""Read queries for the web pages. Access is decided before these are called (services.access); these only
shape what a person who may see a collection or document is shown."""

from __future__ import annotations

import json
import os
import shutil
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import redis
from django.conf import settings
from django.db.models import Count, Q, QuerySet

from docs_app.models import Chunk, Collection, Document, DocumentStatus

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

    AnyUser = AbstractBaseUser | AnonymousUser

LLM_STATUS_KEY = "docs:llm:status"
QUEUES = ("ingest", "answer")
_PROBE_TIMEOUT_S = 2.0


# --- Library ----------------------------------------------------------------------------------------------

def collections_overview(*, collections: QuerySet[Collection]) -> QuerySet[Collection]:
    """The given collections, each annotated with its document count per status (`n_<status>`, `n_total`)."""
    per_status = {f"n_{status}": Count("documents", filter=Q(documents__status=status))
                  for status in DocumentStatus.values}
    return collections.annotate(n_total=Count("documents"), **per_status).order_by("name")


def collection_documents(*, collection: Collection, status: str = "", query: str = "") -> QuerySet[Document]:
    documents = Document.objects.filter(collection=collection).select_related("uploaded_by")
    if status in DocumentStatus.values:
        documents = documents.filter(status=status)
    if query:
        documents = documents.filter(Q(title__icontains=query) | Q(original_name__icontains=query))
    return documents


def collection_status_counts(*, collection: Collection) -> dict[str, int]:
    return _counts_by_status(Document.objects.filter(collection=collection))


def _counts_by_status(documents: QuerySet[Document]) -> dict[str, int]:
    counts = dict.fromkeys(DocumentStatus.values, 0)
    counts.update({row["status"]: row["n"] for row in documents.values("status").annotate(n=Count("id"))})
    return counts


@dataclass(frozen=True)
class FailureAdvice:
    retryable: bool
    hint: str


# Failures that the same bytes will always hit again; the person has to bring a different file.
_PERMANENT: tuple[tuple[str, str], ...] = (
    ("password protected", "Upload a copy without a password."),
    ("not a PDF", "Only PDF files can be added."),
    ("empty file", "The file is empty; upload the real document."),
    ("too large", "Split the file, or ask an administrator to raise the size limit."),
    ("too many pages", "Split the file, or ask an administrator to raise the page limit."),
    ("no pages", "The PDF has no pages; export it again."),
    ("no text layer", "This is a scan without text; upload a copy with a text layer (OCR)."),
    ("damaged PDF", "The file is damaged; export or scan it again and upload the new copy."),
    ("stored file is missing", "The stored file is gone; upload it again."),
)


def failure_advice(reason: str) -> FailureAdvice:
    """Retry makes sense for what may not happen twice: timeouts, crashes, memory, internal errors."""
    for needle, hint in _PERMANENT:
        if needle.lower() in reason.lower():
            return FailureAdvice(retryable=False, hint=hint)
    return FailureAdvice(retryable=True, hint="This may have been a passing problem; try again.")


def document_status_rows(*, documents: Iterable[Document]) -> list[dict[str, Any]]:
    """What the live progress bar needs, per document."""
    rows = []
    for document in documents:
        advice = failure_advice(document.error) if document.status == DocumentStatus.FAILED else None
        rows.append({
            "id": document.pk,
            "status": document.status,
            "status_label": document.get_status_display(),
            "progress": document.progress,
            "pages_done": document.pages_done,
            "page_count": document.page_count,
            "error": document.error,
            "hint": advice.hint if advice else "",
            "retryable": bool(advice and advice.retryable),
            "terminal": document.is_terminal,
        })
    return rows


# --- Viewer -----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TextSegment:
    text: str
    cited: bool


def page_text_segments(*, document: Document, page: int, cited: Chunk | None) -> list[TextSegment]:
    """The page's text as indexed, rebuilt from its Chunk rows (no PDF is parsed for this), with the cited
    chunk's character range marked. Chunks overlap by a few sentences, so each contributes only the part
    past what earlier chunks covered; text no chunk holds (a bare page number) is left out."""
    chunks = Chunk.objects.filter(document=document, page=page).order_by("char_start", "ordinal")
    mark = (cited.char_start, cited.char_end) if cited is not None and cited.page == page else None
    pieces: list[tuple[int, str]] = []  # (page offset, text) without overlaps
    covered = 0
    for chunk in chunks:
        if chunk.char_end <= covered:
            continue
        skip = max(0, covered - chunk.char_start)
        if pieces and chunk.char_start > covered:
            pieces.append((covered, "\n"))
        pieces.append((chunk.char_start + skip, chunk.text[skip:]))
        covered = chunk.char_end
    segments: list[TextSegment] = []
    for offset, text in pieces:
        if mark is None:
            segments.append(TextSegment(text, False))
            continue
        end = offset + len(text)
        lo, hi = max(offset, mark[0]), min(end, mark[1])
        if lo >= hi:
            segments.append(TextSegment(text, False))
            continue
        segments.extend(seg for seg in (
            TextSegment(text[: lo - offset], False),
            TextSegment(text[lo - offset: hi - offset], True),
            TextSegment(text[hi - offset:], False),
        ) if seg.text)
    return segments


# --- System status (staff) --------------------------------------------------------------------------------

@dataclass
class SystemStatus:
    redis_ok: bool = False
    redis_error: str = ""
    queue_depth: dict[str, int | None] = field(default_factory=dict)
    workers: list[str] = field(default_factory=list)
    chroma_ok: bool = False
    chroma_error: str = ""
    model: dict[str, Any] | None = None
    documents_by_status: dict[str, int] = field(default_factory=dict)
    disk_total: int = 0
    disk_used: int = 0
    disk_free: int = 0
    media_bytes: int = 0
    page_cache_bytes: int = 0


def system_status_get() -> SystemStatus:
    """Probes with short timeouts, each on its own: one dead service must not hide the state of the others."""
    status = SystemStatus()
    _probe_redis(status)
    # Workers answer through the broker: with Redis down a ping could only wait for nothing.
    status.workers = _workers_alive() if status.redis_ok else []
    status.chroma_ok, status.chroma_error = _chroma_heartbeat()
    status.documents_by_status = _counts_by_status(Document.objects.all())
    data_dir = Path(settings.DATA_DIR)
    if data_dir.exists():
        status.disk_total, status.disk_used, status.disk_free = shutil.disk_usage(data_dir)
    status.media_bytes = _tree_size(Path(settings.MEDIA_ROOT))
    status.page_cache_bytes = _tree_size(Path(settings.PAGE_CACHE_DIR))
    return status


def _probe_redis(status: SystemStatus) -> None:
    client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=_PROBE_TIMEOUT_S,
                                  socket_connect_timeout=_PROBE_TIMEOUT_S)
    try:
        client.ping()
        # Celery's Redis transport keeps each queue as a list named after it.
        status.queue_depth = {queue: int(client.llen(queue)) for queue in QUEUES}
        raw = client.get(LLM_STATUS_KEY)
        status.model = json.loads(raw) if raw else None
        status.redis_ok = True
    except (redis.RedisError, ValueError) as exc:
        status.redis_error = str(exc)[:200]
        status.queue_depth = dict.fromkeys(QUEUES)
    finally:
        client.close()


def _workers_alive() -> list[str]:
    from workers.celery import app

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
