"""A scanned contract in a real browser: headless Chromium against the live app, the real worker and Tesseract.

A paralegal uploads an image-only scan of a contract (150 dpi greyscale, skewed, noisy, JPEG) and a text
contract, sees the scan become ready as "read by OCR", opens a citation into the scanned page and finds the
cited passage highlighted where it is on the image; when the office asks for every uncertain page to be checked,
the library's review filter lists the scan and the viewer names the pages to check."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pymupdf
import pytest
from playwright.sync_api import expect

from docs_app.devscans import scan_pdf
from docs_app.models import Chunk, Collection, Document, Grant, Page, Role
from docs_app.pipeline.ocr import passage_boxes
from docs_app.selectors.retrieval import chunks_retrieve
from tests.browser.conftest import Browser
from tests.data import JOINT_VENTURE, JOINT_VENTURE_QUESTION, WEB_HOSTING, cuad
from tests.harness import PASSWORD, make_user

pytestmark = [pytest.mark.browser, pytest.mark.services, pytest.mark.django_db(transaction=True)]

PROCESSING_TIMEOUT_MS = 300_000
# A page image is rendered on first view in a sandboxed child; on a loaded 2-core machine that can take a while.
IMAGE_TIMEOUT_MS = 60_000
SCAN = "MightyCell joint venture (scan).pdf"


def _log_in(page: Any, base: str, name: str) -> None:
    page.goto(f"{base}/login/")
    page.get_by_label("User name").fill(name)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{base}/")


def _highlight_box(page: Any) -> list[float]:
    """[x0, y0, x1, y1, count] of the yellow-tinted pixels of the page image, as fractions of its size."""
    return list(page.evaluate("""() => {
        const img = document.getElementById("page-image");
        const canvas = document.createElement("canvas");
        canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
        const ctx = canvas.getContext("2d");
        ctx.drawImage(img, 0, 0);
        const data = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
        let n = 0, x0 = canvas.width, y0 = canvas.height, x1 = 0, y1 = 0;
        for (let i = 0; i < data.length; i += 4) {
            if (data[i] - data[i + 2] > 60) {
                const p = i / 4, x = p % canvas.width, y = Math.floor(p / canvas.width);
                n++; x0 = Math.min(x0, x); y0 = Math.min(y0, y); x1 = Math.max(x1, x); y1 = Math.max(y1, y);
            }
        }
        return [x0 / canvas.width, y0 / canvas.height, x1 / canvas.width, y1 / canvas.height, n];
    }"""))


def test_a_scan_is_read_by_ocr_cited_with_its_passage_highlighted_and_listed_for_review(
        services: None, live_server: Any, browser: Browser, tmp_path: Path, settings) -> None:
    base = live_server.url
    matter = Collection.objects.create(name="Matter 2025-03", description="Scanned joint venture papers")
    paralegal = make_user("paralegal")
    Grant.objects.create(collection=matter, user=paralegal, role=Role.CONTRIBUTOR)
    scan = tmp_path / SCAN
    scan_pdf(cuad(JOINT_VENTURE), scan, seed=7)

    page = browser.person()
    _log_in(page, base, "paralegal")
    page.get_by_role("link", name="Matter 2025-03").click()
    page.get_by_label("Files (PDF or .zip)").set_input_files([str(scan), str(cuad(WEB_HOSTING))])
    page.locator("#upload-submit").click()
    expect(page.locator("#upload-list li[data-status=ready]")).to_have_count(2, timeout=PROCESSING_TIMEOUT_MS)
    row = page.locator("tr.document-row", has_text="MightyCell")
    expect(row.locator(".ocr-summary")).to_have_text("Scanned: 3 pages read by OCR")
    assert page.locator("tr.document-row", has_text="GALACTICOMM").locator(".ocr-summary").count() == 0
    Browser.screenshot(page, "ocr-01-collection")

    # A citation into the scanned page: the viewer URL an answer's source links to.
    document = Document.objects.get(collection=matter, original_name=SCAN)
    hit = next(h for h in chunks_retrieve(user=paralegal, query=JOINT_VENTURE_QUESTION, k=5)
               if "February 28" in " ".join(h.text.split()))
    chunk = Chunk.objects.get(pk=hit.chunk_id)
    page.goto(f"{base}/documents/{document.pk}/?page={chunk.page}&chunk={chunk.pk}")
    image = page.locator("#page-image")
    expect(image).to_have_js_property("complete", True, timeout=IMAGE_TIMEOUT_MS)
    origin = page.locator("#page-origin")
    expect(origin).to_contain_text("Read by OCR from the page image, confidence")
    assert origin.get_attribute("data-source") == "ocr"
    assert "February 28" in " ".join(page.locator("mark#cited").inner_text().split())
    # The yellow lies on the passage: where OCR's word boxes put it on the page, within a line's height.
    reading = Page.objects.get(document=document, number=chunk.page)
    boxes = passage_boxes(reading.ocr_words, chunk.char_start, chunk.char_end)
    with pymupdf.open(scan) as pdf:
        width, height = pdf[chunk.page - 1].rect.width, pdf[chunk.page - 1].rect.height
    x0, y0, _x1, y1, count = _highlight_box(page)
    assert count > 200
    assert abs(y0 - min(b[1] for b in boxes) / height) < 0.02 and abs(y1 - max(b[3] for b in boxes) / height) < 0.02
    assert abs(x0 - min(b[0] for b in boxes) / width) < 0.05
    Browser.screenshot(page, "ocr-02-viewer-cited-scan")

    # The office wants every page under 101 % checked: the scan is listed for review, the text contract is not.
    settings.OCR_LOW_CONFIDENCE = 101
    page.goto(f"{base}/collections/{matter.pk}/")
    page.get_by_label("Status").select_option(label="Needs review (uncertain OCR)")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("tr.document-row")).to_have_count(1)
    review = page.locator("tr.document-row .review")
    expect(review).to_have_text("3 pages to review")
    Browser.screenshot(page, "ocr-03-review-filter")
    review.click()
    expect(page.locator("#review-pages")).to_contain_text("check them against the page image")
    expect(page.locator("#page-origin")).to_contain_text("Low confidence")
    expect(page.locator("#page-image")).to_have_js_property("complete", True, timeout=IMAGE_TIMEOUT_MS)
    Browser.screenshot(page, "ocr-04-viewer-review")
