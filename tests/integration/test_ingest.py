"""Ingestion through the real stack: upload -> Redis -> Celery worker process -> PyMuPDF child -> MiniLM ->
Chroma server -> Chunk rows."""

from __future__ import annotations

import unicodedata
from pathlib import Path

import pymupdf
import pytest
from django.conf import settings

from docs_app import registry
from docs_app.models import Chunk, Collection, Document, DocumentStatus
from docs_app.pipeline.normalize import comparable
from docs_app.services.actor import SYSTEM
from docs_app.services.documents import document_delete, document_upload
from docs_app.services.ingest import document_ingest
from tests.data import cuad, cuad_first
from tests.harness import ingest, upload, wait_ready, wait_until

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


def _vector_ids(document_id: int) -> set[str]:
    store = registry.vector_store()
    got = store._coll().get(where={"document_id": document_id}, include=[])  # type: ignore[attr-defined]
    return set(got["ids"])


def test_real_contracts_become_ready_with_page_anchored_chunks(services: None) -> None:
    collection = Collection.objects.create(name="Matter A")
    contracts = cuad_first(3)
    ids = [upload(collection, path) for path in contracts]
    for document_id, path in zip(ids, contracts, strict=True):
        document = wait_ready(document_id)
        with pymupdf.open(path) as pdf:
            page_texts = [page.get_text() for page in pdf]
        assert document.page_count == len(page_texts)
        assert document.progress == 100
        chunks = list(Chunk.objects.filter(document=document).order_by("ordinal"))
        assert len(chunks) >= document.page_count // 2
        assert [c.ordinal for c in chunks] == list(range(len(chunks)))
        for chunk in chunks:
            assert 1 <= chunk.page <= document.page_count
            # The stored offsets point at the chunk's text on its page as extracted (what the renderer
            # highlights); the text itself is normalised for search (ligatures, hyphenation, NFKC).
            extracted = page_texts[chunk.page - 1][chunk.char_start:chunk.char_end]
            assert comparable(extracted) == comparable(chunk.text)
            assert unicodedata.is_normalized("NFKC", chunk.text) and "\u00ad" not in chunk.text
            assert len(chunk.embedding) == 384 * 4
        assert _vector_ids(document.pk) == {c.vector_id for c in chunks}


def test_a_contract_keeps_its_metadata_names_and_section_headings(services: None) -> None:
    collection = Collection.objects.create(name="Matter M")
    document = wait_ready(upload(collection, cuad("HPILHOLDING_01_07_2015-EX-99.1-COOPERATION AGREEMENT.PDF")))
    assert document.metadata["title"] == "Cooperation Agreement"
    assert document.metadata["parties"] == ["HPIL ENERGYTECH Inc.", "GINARES GROUP AG"]
    assert document.doc_type == "cooperation agreement"
    assert str(document.effective_date) == "2015-01-05" and document.year == 2015
    assert "hpil energytech inc" in document.names.splitlines()
    headings = set(Chunk.objects.filter(document=document).values_list("heading", flat=True))
    assert any("Confidentiality" in heading for heading in headings)


def test_same_bytes_twice_in_a_collection_is_a_duplicate(services: None) -> None:
    collection = Collection.objects.create(name="Matter B")
    contract = cuad_first(1)[0]
    first = upload(collection, contract)
    with contract.open("rb") as source:
        again = document_upload(collection=collection, name="copy.pdf", source=source, actor=SYSTEM)
    assert again.status == "duplicate"
    assert again.document_id == first
    assert Document.objects.filter(collection=collection).count() == 1
    # The same file may live in another matter.
    other = Collection.objects.create(name="Matter C")
    assert upload(other, contract) != first


def test_ingesting_again_creates_no_duplicate_chunks_or_vectors(services: None) -> None:
    collection = Collection.objects.create(name="Matter D")
    document_id = ingest(collection, cuad_first(2)[1]).pk
    before_rows = Chunk.objects.filter(document_id=document_id).count()
    before_vectors = _vector_ids(document_id)
    # A redelivered message for finished work is a no-op ...
    document_ingest(document_id=document_id)
    # ... and a forced replay (crash after upsert, say) overwrites instead of adding.
    Document.objects.filter(pk=document_id).update(status=DocumentStatus.EMBEDDING, attempts=0)
    document_ingest(document_id=document_id)
    assert Document.objects.get(pk=document_id).status == DocumentStatus.READY
    assert Chunk.objects.filter(document_id=document_id).count() == before_rows
    assert Document.objects.get(pk=document_id).chunk_count == before_rows > 0  # what scope sizes add up
    assert _vector_ids(document_id) == before_vectors


def test_poison_document_fails_after_the_attempt_limit(services: None, settings) -> None:
    collection = Collection.objects.create(name="Matter E")
    document_id = ingest(collection, cuad_first(3)[2]).pk
    # As if the worker had been killed mid-task three times already.
    Document.objects.filter(pk=document_id).update(status=DocumentStatus.EXTRACTING,
                                                    attempts=settings.INGEST_MAX_ATTEMPTS)
    document_ingest(document_id=document_id)
    document = Document.objects.get(pk=document_id)
    assert document.status == DocumentStatus.FAILED
    assert "gave up after 3 attempts" in document.error
    assert not Chunk.objects.filter(document_id=document_id).exists()


def test_delete_erases_file_chunks_and_vectors(services: None) -> None:
    collection = Collection.objects.create(name="Matter F")
    document = ingest(collection, cuad_first(1)[0])
    document_id = document.pk
    path = Path(settings.MEDIA_ROOT) / document.stored_name
    assert path.exists() and _vector_ids(document_id)
    document_delete(document=document, actor=SYSTEM)
    assert not path.exists()
    assert not Chunk.objects.filter(document_id=document_id).exists()
    assert not Document.objects.filter(pk=document_id).exists()
    wait_until(lambda: not _vector_ids(document_id), timeout_s=60, what="vectors to be purged")


def test_wrong_type_empty_and_oversize_uploads_are_rejected_with_reasons(services: None, settings,
                                                                         tmp_path: Path) -> None:
    collection = Collection.objects.create(name="Matter G")
    png = tmp_path / "scan.pdf"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 100)
    empty = tmp_path / "empty.pdf"
    empty.write_bytes(b"")
    settings.UPLOAD_MAX_FILE_MB = 1
    big = tmp_path / "big.pdf"
    big.write_bytes(b"%PDF-1.4\n" + b"0" * (2 * 1024 * 1024))
    reasons = {}
    for path in (png, empty, big):
        with path.open("rb") as source:
            outcome = document_upload(collection=collection, name=path.name, source=source, actor=SYSTEM)
        assert outcome.status == "rejected"
        reasons[path.name] = outcome.reason
    assert "not a PDF" in reasons["scan.pdf"]
    assert "empty" in reasons["empty.pdf"]
    assert "too large" in reasons["big.pdf"]
    assert not Document.objects.filter(collection=collection).exists()
    assert not list(Path(settings.MEDIA_ROOT).glob(".incoming-*"))
