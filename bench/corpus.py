"""Filling a benchmark's collection through the real upload path and queue (call after django.setup())."""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def corpus_ingest(collection: Any, paths: Iterable[Path], *, poll_s: float = 1.0) -> Any:
    """Upload each PDF the collection does not hold yet (by file name: a reused work directory keeps what it
    has), wait until every document of the collection is READY or FAILED, and return them."""
    from docs_app.models import Document, DocumentStatus
    from docs_app.services.actor import SYSTEM
    from docs_app.services.documents import document_upload

    documents = Document.objects.filter(collection=collection)
    for path in paths:
        if not documents.filter(original_name=path.name).exists():
            with path.open("rb") as source:
                document_upload(collection=collection, name=path.name, source=source, actor=SYSTEM)
    while documents.exclude(status__in=[DocumentStatus.READY, DocumentStatus.FAILED]).exists():
        time.sleep(poll_s)
    return documents
