"""Reads for the library pages: collections with their document counts, a collection's documents, and what
the live progress bar shows. Access is decided before these are called (services.access); these only shape
what a person who may see a collection is shown."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db.models import Count, Q, QuerySet

from docs_app.models import Collection, Document, DocumentStatus


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
    return documents_count_by_status(Document.objects.filter(collection=collection))


def documents_count_by_status(documents: QuerySet[Document]) -> dict[str, int]:
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


