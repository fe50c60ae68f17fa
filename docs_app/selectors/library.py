"""Reads for the library pages: collections with their document counts, a collection's documents, and what
the live progress bar shows. Access is decided before these are called (services.access); these only shape
what a person who may see a collection is shown."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db.models import Count, Exists, Min, OuterRef, Q, QuerySet

from docs_app.models import Collection, Document, DocumentStatus, Page, PageSource

# The documents filter's extra choice besides the statuses: documents with OCR pages a person should check.
REVIEW = "review"
REVIEW_LABEL = "Needs review (uncertain OCR)"


def collections_overview(*, collections: QuerySet[Collection]) -> QuerySet[Collection]:
    """The given collections, each annotated with its document count per status (`n_<status>`, `n_total`)."""
    per_status = {f"n_{status}": Count("documents", filter=Q(documents__status=status))
                  for status in DocumentStatus.values}
    return collections.annotate(n_total=Count("documents"), **per_status).order_by("name")


def pages_to_review() -> QuerySet[Page]:
    """Pages a person should check against the page image: read by OCR with a confidence under
    OCR_LOW_CONFIDENCE, or needing OCR that did not finish. The threshold is applied when asked, so changing
    the setting needs no re-ingestion."""
    return Page.objects.filter(Q(source=PageSource.OCR, ocr_confidence__lt=settings.OCR_LOW_CONFIDENCE)
                               | Q(ocr_failed=True))


def collection_documents(*, collection: Collection, status: str = "", query: str = "") -> QuerySet[Document]:
    documents = Document.objects.filter(collection=collection).select_related("uploaded_by")
    if status in DocumentStatus.values:
        documents = documents.filter(status=status)
    elif status == REVIEW:
        documents = documents.filter(status=DocumentStatus.READY).filter(
            Exists(pages_to_review().filter(document=OuterRef("pk"))))
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


# Failures that go away once an administrator fixes the machine: a retry then works.
_FIXABLE: tuple[tuple[str, str], ...] = (
    ("OCR unavailable", "OCR cannot run on the server for the reason given; an administrator can fix that "
                        "(see the README), then retry."),
    ("OCR did not finish", "OCR ran out of time; retry, or ask an administrator to raise the OCR time limits."),
)
# Failures that the same bytes will always hit again; the person has to bring a different file.
_PERMANENT: tuple[tuple[str, str], ...] = (
    ("password protected", "Upload a copy without a password."),
    ("not a PDF", "Only PDF files can be added."),
    ("empty file", "The file is empty; upload the real document."),
    ("too large", "Split the file, or ask an administrator to raise the size limit."),
    ("too many pages", "Split the file, or ask an administrator to raise the page limit."),
    ("no pages", "The PDF has no pages; export it again."),
    ("no text layer", "This is a scan without text; upload a copy with a text layer (OCR)."),
    ("no text found", "OCR found no legible text: blank pages or pictures. A clearer scan (300 dpi) may help."),
    ("damaged PDF", "The file is damaged; export or scan it again and upload the new copy."),
    ("stored file is missing", "The stored file is gone; upload it again."),
)


def failure_advice(reason: str) -> FailureAdvice:
    """Retry makes sense for what may not happen twice: timeouts, crashes, memory, internal errors."""
    for needle, hint in _FIXABLE:
        if needle.lower() in reason.lower():
            return FailureAdvice(retryable=True, hint=hint)
    for needle, hint in _PERMANENT:
        if needle.lower() in reason.lower():
            return FailureAdvice(retryable=False, hint=hint)
    return FailureAdvice(retryable=True, hint="This may have been a passing problem; try again.")


def review_counts(*, documents: Iterable[Document]) -> dict[int, tuple[int, int]]:
    """Per ready document with pages to review: how many, and the first of them."""
    ids = [document.pk for document in documents if document.status == DocumentStatus.READY]
    rows = (pages_to_review().filter(document_id__in=ids).values("document_id")
            .annotate(n=Count("id"), first=Min("number")))
    return {row["document_id"]: (row["n"], row["first"]) for row in rows}


def _pages_label(document: Document) -> str:
    """The pages column: "12 / 40" while text layers are read, "OCR 3 / 25" while scans are, the count after."""
    if not document.page_count:
        return "\u2013"  # an en dash: no count yet
    if document.is_terminal:
        return str(document.page_count)
    if document.status == DocumentStatus.EXTRACTING and document.ocr_page_count:
        return f"OCR {document.ocr_pages_done} / {document.ocr_page_count}"
    return f"{document.pages_done} / {document.page_count}"


def document_status_rows(*, documents: Iterable[Document]) -> list[dict[str, Any]]:
    """What the live progress bar needs, per document."""
    documents = list(documents)
    reviews = review_counts(documents=documents)
    rows = []
    for document in documents:
        advice = failure_advice(document.error) if document.status == DocumentStatus.FAILED else None
        reading_scans = document.status == DocumentStatus.EXTRACTING and document.ocr_page_count > 0
        rows.append({
            "id": document.pk,
            "status": document.status,
            "status_label": "Reading scanned pages (OCR)" if reading_scans else document.get_status_display(),
            "progress": document.progress,
            "pages_done": document.pages_done,
            "page_count": document.page_count,
            "pages_label": _pages_label(document),
            "ocr_page_count": document.ocr_page_count,
            "ocr_pages_done": document.ocr_pages_done,
            "review_pages": reviews.get(document.pk, (0, 0))[0],
            "first_review_page": reviews.get(document.pk, (0, 0))[1],
            "error": document.error,
            "hint": advice.hint if advice else "",
            "retryable": bool(advice and advice.retryable),
            "terminal": document.is_terminal,
        })
    return rows


