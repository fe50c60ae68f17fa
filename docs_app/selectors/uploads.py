"""Reads for upload reports: a collection's recent uploads with their counts, and one upload's files with what
became of each (the document's status now, not only at upload). Access to the collection is checked by the
views (services.access) before these are called."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Count, Q, QuerySet

from docs_app.models import Collection, DocumentStatus, UploadBatch, UploadItem

RECENT_BATCHES = 10


def upload_batches_recent(*, collection: Collection, limit: int = RECENT_BATCHES) -> QuerySet[UploadBatch]:
    """The collection's latest uploads, each with `n_files`, `n_rejected` and `n_failed` (documents that were
    queued and then failed to process)."""
    return (UploadBatch.objects.filter(collection=collection).select_related("created_by")
            .annotate(n_files=Count("items"),
                      n_rejected=Count("items", filter=Q(items__status="rejected")),
                      n_failed=Count("items", filter=Q(items__document__status=DocumentStatus.FAILED)))
            .order_by("-created_at", "-id")[:limit])


def upload_batch_of(*, collection: Collection, batch_id: int) -> UploadBatch | None:
    return UploadBatch.objects.filter(collection=collection, pk=batch_id).select_related("created_by").first()


@dataclass(frozen=True)
class UploadLine:
    item: UploadItem
    state: str  # rejected, duplicate, failed, queued, extracting, embedding, ready
    reason: str

    @property
    def problem(self) -> bool:
        return self.state in {"rejected", "failed"}


_ORDER = {"rejected": 0, "failed": 0, "duplicate": 1}


def upload_batch_lines(*, batch: UploadBatch) -> list[UploadLine]:
    """Every file of the upload, problems first (rejected at upload, or failed while processing), then in the
    order they were sent; a queued file shows its document's status now."""
    lines = []
    for item in batch.items.select_related("document").order_by("id"):
        document = item.document
        if item.status == "queued" and document is not None:
            state, reason = str(document.status), document.error if document.status == DocumentStatus.FAILED else ""
        elif item.status == "queued":
            state, reason = "erased", "the document was deleted since"
        else:
            state, reason = item.status, item.reason
        lines.append(UploadLine(item=item, state=state, reason=reason))
    return sorted(lines, key=lambda line: _ORDER.get(line.state, 2))
