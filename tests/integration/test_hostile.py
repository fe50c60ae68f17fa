"""Every hostile file ends in a terminal state with a readable reason, and the worker survives all of them.
Goes through `import_folder`, the bulk path an office uses for a whole drive."""

from __future__ import annotations

import io
import re
from contextlib import redirect_stdout

import pytest
from django.core.management import call_command

from docs_app.models import Chunk, Collection, Document, DocumentStatus
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
    assert by_name["pdfjs__bitmap-mmr.pdf"].error == "no text layer (needs OCR)"
    assert by_name["gen__3000_pages.pdf"].status == DocumentStatus.READY
    assert by_name["gen__3000_pages.pdf"].page_count == 3000

    # The worker is still alive and still ingests after all of that.
    from workers.celery import app

    assert app.control.ping(timeout=5.0)
