"""Every hostile file ends in a terminal state with a readable reason, and the worker survives all of them.
Goes through `import_folder`, the bulk path an office uses for a whole drive. Pages without a usable text layer
go through OCR (the real Tesseract), so image-only files with print on them become ready."""

from __future__ import annotations

import io
import re
from contextlib import redirect_stdout

import pytest
from django.core.management import call_command

from docs_app.models import Chunk, Collection, Document, DocumentStatus, Page
from docs_app.selectors.library import pages_to_review
from tests.data import hostile
from tests.harness import wait_until

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


def test_every_hostile_file_ends_ready_or_failed_with_a_reason(services: None) -> None:
    files = sorted(p for p in hostile().iterdir() if p.is_file())
    out = io.StringIO()
    with redirect_stdout(out), pytest.raises(SystemExit) as exit_info:
        call_command("import_folder", str(hostile()), collection="Hostile", stdout=out)
    assert exit_info.value.code == 1  # some files were rejected at the door, so the command says so
    summary = out.getvalue()
    counts = re.search(r"imported (\d+), duplicate (\d+), rejected (\d+)", summary)
    assert counts, summary
    imported, duplicate, rejected = map(int, counts.groups())
    assert imported + duplicate + rejected == len(files)
    for line in summary.splitlines()[1:]:
        assert re.match(r"  (rejected|duplicate): .+: .+", line), line  # every refusal names its reason

    collection = Collection.objects.get(name="Hostile")
    assert Document.objects.filter(collection=collection).count() == imported
    wait_until(
        lambda: not Document.objects.filter(collection=collection).exclude(
            status__in=[DocumentStatus.READY, DocumentStatus.FAILED]).exists(),
        timeout_s=900, every_s=2, what="every hostile document to reach a terminal state",
    )
    for document in Document.objects.filter(collection=collection):
        if document.status == DocumentStatus.FAILED:
            assert len(document.error) > 5, document.original_name
            assert not Chunk.objects.filter(document=document).exists()
        else:
            assert Chunk.objects.filter(document=document).exists(), document.original_name

    by_name = {d.original_name: d for d in Document.objects.filter(collection=collection)}
    assert by_name["pdfminer__rc4-40.pdf"].error == "password protected"
    # Image-only files: those whose pictures hold text are read by OCR, the pictures of nothing keep a reason.
    assert by_name["pdfjs__bitmap-mmr.pdf"].error.startswith("no text found: no text layer, and OCR read no legible")
    assert by_name["pypdf__cmyk-image.pdf"].error.startswith("no text found")
    patent = by_name["pdfminer__encrypted_doc_no_id.pdf"]  # three scanned pages, the second with print on it
    assert patent.status == DocumentStatus.READY
    assert list(Page.objects.filter(document=patent).values_list("source", flat=True)) == ["none", "ocr", "none"]
    patent_text = " ".join(Chunk.objects.filter(document=patent).values_list("text", flat=True))
    assert "international search report" in " ".join(patent_text.split())
    certificate = by_name["pdfjs__issue7229.pdf"]  # a Russian scan, read with English data: ready, to be reviewed
    assert certificate.status == DocumentStatus.READY
    assert pages_to_review().filter(document=certificate).exists()
    assert by_name["gen__3000_pages.pdf"].status == DocumentStatus.READY
    assert by_name["gen__3000_pages.pdf"].page_count == 3000

    # The worker is still alive and still ingests after all of that.
    from workers.celery import app

    assert app.control.ping(timeout=5.0)
