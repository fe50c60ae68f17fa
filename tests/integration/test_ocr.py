"""Scanned documents through the real stack: upload -> worker -> text pass -> OCR in sandboxed children with the
real Tesseract -> chunks, vectors and Page rows; then retrieval, the viewer (where the text came from, the
highlight drawn from OCR's word boxes) and the library's review list through the web views.

The scans are image-only copies of real CUAD contracts as an office scanner makes them (docs_app.devscans:
150 dpi greyscale, slight skew, noise, JPEG)."""

from __future__ import annotations

from pathlib import Path

import pymupdf
import pytest

from docs_app.devscans import scan_pdf
from docs_app.models import AuditEvent, Chunk, Collection, Document, Grant, Page, PageSource, Role
from docs_app.pipeline.ocr import passage_boxes
from docs_app.selectors.retrieval import chunks_retrieve
from docs_app.services.actor import SYSTEM
from docs_app.services.documents import document_delete
from tests.data import JOINT_VENTURE, JOINT_VENTURE_QUESTION, SPONSORSHIP, cuad
from tests.harness import ingest, logged_in, make_user

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def scans(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("scans")
    scan_pdf(cuad(JOINT_VENTURE), folder / "joint-venture-scan.pdf", seed=3)
    scan_pdf(cuad(SPONSORSHIP), folder / "sponsorship-scan.pdf", seed=4)
    mixed = pymupdf.open(cuad(SPONSORSHIP))
    mixed.delete_pages([1, 2])
    with pymupdf.open(folder / "sponsorship-scan.pdf") as scan:
        mixed.insert_pdf(scan, from_page=1, to_page=2)
    mixed.save(folder / "sponsorship-mixed.pdf")
    return {"scan": folder / "joint-venture-scan.pdf", "other": folder / "sponsorship-scan.pdf",
            "mixed": folder / "sponsorship-mixed.pdf"}


def _highlight_pixels(png: bytes) -> int:
    """Pixels tinted by the yellow highlight: a scanned page is otherwise grey."""
    pixmap = pymupdf.Pixmap(png)
    samples, n = pixmap.samples, pixmap.n
    return sum(1 for i in range(0, len(samples), n * 7) if samples[i] - samples[i + 2] > 60)


def test_a_scanned_contract_becomes_searchable_and_citable_through_ocr(services: None,
                                                                        scans: dict[str, Path]) -> None:
    collection = Collection.objects.create(name="Scans")
    reader = make_user("reader")
    Grant.objects.create(collection=collection, user=reader, role=Role.VIEWER)

    document = ingest(collection, scans["scan"])

    assert document.page_count == document.ocr_page_count == 3
    pages = list(Page.objects.filter(document=document).order_by("number"))
    assert [page.source for page in pages] == [PageSource.OCR] * 3
    assert all(page.ocr_confidence is not None and page.ocr_confidence >= 70 for page in pages)
    assert all(page.ocr_words and not page.ocr_failed for page in pages)
    event = AuditEvent.objects.get(action="document.ingest", document_id_ref=document.pk)
    assert event.details["ocr_pages"] == 3

    # Found by the question an office would ask, on the page of the term clause.
    found = chunks_retrieve(user=reader, query=JOINT_VENTURE_QUESTION, k=5)
    term = next(hit for hit in found if "February 28" in " ".join(hit.text.split()))
    chunk = Chunk.objects.get(pk=term.chunk_id)
    assert chunk.page == 2
    assert passage_boxes(pages[1].ocr_words, chunk.char_start, chunk.char_end)

    # The viewer says where the text came from, and the highlight lies on the passage's lines.
    client = logged_in(reader)
    html = client.get(f"/documents/{document.pk}/?chunk={chunk.pk}").content.decode()
    assert 'data-source="ocr"' in html and "Read by OCR" in html
    assert f"confidence {pages[1].ocr_confidence:.0f} %" in html
    base = f"/documents/{document.pk}/pages/2.png"
    highlighted, plain = client.get(f"{base}?chunk={chunk.pk}"), client.get(base)
    assert highlighted.status_code == plain.status_code == 200
    assert _highlight_pixels(highlighted.getvalue()) > 200
    assert _highlight_pixels(plain.getvalue()) == 0


def test_a_mixed_pdf_is_read_page_by_page(services: None, scans: dict[str, Path]) -> None:
    collection = Collection.objects.create(name="Mixed")
    document = ingest(collection, scans["mixed"])
    pages = list(Page.objects.filter(document=document).order_by("number"))
    assert [page.source for page in pages] == [PageSource.TEXT, PageSource.OCR, PageSource.OCR]
    assert pages[0].ocr_confidence is None and pages[0].ocr_words == []
    assert document.ocr_page_count == 2
    with pymupdf.open(cuad(SPONSORSHIP)) as original:
        first_page = " ".join(original[0].get_text().split())
    # The text page's chunks are its text layer, exactly; the scanned pages' are OCR's reading.
    for chunk in Chunk.objects.filter(document=document, page=1):
        assert " ".join(chunk.text.split()) in first_page
    assert Chunk.objects.filter(document=document, page=3).exists()
    # Erasure takes the pages' word boxes with the chunks.
    document_delete(document=document, actor=SYSTEM)
    assert not Page.objects.filter(document_id=document.pk).exists()


def test_the_library_lists_documents_with_uncertain_ocr_pages_for_review(services: None, scans: dict[str, Path],
                                                                         settings) -> None:
    collection = Collection.objects.create(name="Review")
    clerk = make_user("clerk")
    Grant.objects.create(collection=collection, user=clerk, role=Role.VIEWER)
    scanned = ingest(collection, scans["other"])
    text = ingest(collection, cuad(JOINT_VENTURE))
    client = logged_in(clerk)
    listing = f"/collections/{collection.pk}/?status=review"

    # The pages read well: nothing to review, but the row says the pages were read by OCR.
    page = client.get(f"/collections/{collection.pk}/").content.decode()
    assert "Scanned: 3 pages read by OCR" in page and "to review" not in page
    assert scanned.title not in client.get(listing).content.decode()

    # An office that wants every page under 101 % checked: all three are listed.
    settings.OCR_LOW_CONFIDENCE = 101
    page = client.get(listing).content.decode()
    assert scanned.title in page and text.title not in page
    assert "3 pages to review" in page and f"/documents/{scanned.pk}/?page=1" in page
    viewer = client.get(f"/documents/{scanned.pk}/?page=2").content.decode()
    assert 'id="review-pages"' in viewer and "Low confidence" in viewer
    row = client.get(f"/collections/{collection.pk}/status.json?ids={scanned.pk}").json()["documents"][0]
    assert row["review_pages"] == 3 and row["pages_label"] == "3"
    assert Document.objects.get(pk=text.pk).ocr_page_count == 0
