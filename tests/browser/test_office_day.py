"""Issue 12 in a real browser, as the office lives it: a paralegal's upload she can follow and reopen, an answer
that keeps its excerpts on reload, an auditor who lands on an audit log she can read and filter by names, a
manager who grants access by picking a colleague, and pages that fit a 390 px phone. Headless Chromium against
the live app with the real Redis, Chroma and Celery worker; screenshots in test-artifacts/screenshots/."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path
from typing import Any

import pymupdf
import pytest
from django.contrib.auth.models import Group
from playwright.sync_api import expect

from docs_app.models import Collection, Document, DocumentStatus, Grant, Role
from docs_app.services.actor import Actor
from docs_app.services.documents import document_delete
from docs_app.services.grants import AUDITORS_GROUP
from tests.browser.conftest import Browser
from tests.data import JOINT_VENTURE, JOINT_VENTURE_QUESTION, SPONSORSHIP, WEB_HOSTING, cuad, cuad_smallest
from tests.harness import PASSWORD, make_user

pytestmark = [pytest.mark.browser, pytest.mark.services, pytest.mark.django_db(transaction=True)]

PROCESSING_TIMEOUT_MS = 300_000
ANSWER_TIMEOUT_MS = 180_000
PHONE = {"width": 390, "height": 844}


def _log_in(page: Any, base: str, name: str) -> None:
    page.goto(f"{base}/login/")
    page.get_by_label("User name").fill(name)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_load_state()


def _fits(page: Any, width: int = PHONE["width"]) -> int:
    scroll = int(page.evaluate("() => document.documentElement.scrollWidth"))
    assert scroll <= width, f"{page.url} is {scroll} px wide at {width} px"
    return scroll


def _archive(tmp_path: Path) -> Path:
    path = tmp_path / "Matter 2024-17 contracts.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("Matter 2024-17/signed/hosting agreement.pdf", cuad(WEB_HOSTING).read_bytes())
        archive.writestr("Matter 2024-17/notes.txt", b"call the client")
    return path


def test_an_upload_shows_queued_documents_at_once_failures_first_and_its_report_reopens(
        services: None, live_server: Any, browser: Browser, tmp_path: Path) -> None:
    base = live_server.url
    matter = Collection.objects.create(name="Matter 2024-17")
    Grant.objects.create(collection=matter, user=make_user("pat", first_name="Pat", last_name="Paralegal"),
                         role=Role.CONTRIBUTOR)
    memo = tmp_path / "memo.docx"
    memo.write_bytes(b"PK\x03\x04 not a pdf")
    files = [*cuad_smallest(3), cuad(SPONSORSHIP), _archive(tmp_path), memo]
    page = browser.person()
    _log_in(page, base, "pat")
    page.goto(f"{base}/collections/{matter.pk}/")
    assert "No documents yet." in page.content()
    page.get_by_label("Files (PDF or .zip)").set_input_files([str(f) for f in files])
    page.locator("#upload-submit").click()
    # The table lists the documents as soon as the upload answers, long before they are processed.
    expect(page.locator("#documents tr.document-row")).to_have_count(5, timeout=60_000)
    assert "No documents yet." not in page.locator("#documents").inner_text()
    # Problems first in the upload list; archive members by their own name, the archive beside them.
    first = page.locator("#upload-list li").first
    expect(first).to_have_attribute("data-outcome", "rejected")
    assert page.locator("#upload-list li", has_text="hosting agreement.pdf").count() == 1
    assert "Matter 2024-17 contracts.zip/Matter 2024-17/signed/hosting" not in page.locator("#upload-list").inner_text()
    expect(page.locator("#upload-report")).to_be_visible()
    Browser.screenshot(page, "12-5-upload-queued")
    expect(page.locator("#upload-list li[data-status=ready]")).to_have_count(5, timeout=PROCESSING_TIMEOUT_MS)

    # A document that fails later is listed first in the table.
    Document.objects.filter(collection=matter, original_name=SPONSORSHIP).update(
        status=DocumentStatus.FAILED, error="damaged PDF: cannot be read")
    page.reload()
    expect(page.locator("#documents tr.document-row").first).to_have_attribute("data-status", "failed")

    # After a reload the upload's report is one click away, every file in it, problems first with reasons.
    page.locator(".recent-uploads summary").click()
    page.locator(".recent-uploads a").first.click()
    page.wait_for_url(re.compile(r"/collections/\d+/uploads/\d+/$"))
    rows = page.locator("tr.outcome")
    expect(rows).to_have_count(7)
    texts = rows.all_inner_texts()
    assert [("problem" in (rows.nth(i).get_attribute("class") or "")) for i in range(7)] == [True] * 3 + [False] * 4
    problems = "\n".join(texts[:3])
    assert "memo.docx" in problems and "not sent" in problems
    assert "notes.txt" in problems and "not a PDF (.txt file)" in problems
    assert "damaged PDF" in problems
    assert any(t.startswith("hosting agreement.pdf") for t in texts)
    Browser.screenshot(page, "12-5-upload-report")


def test_an_answer_keeps_its_excerpts_and_the_auditor_reads_who_asked_what_where(
        services: None, live_server: Any, browser: Browser) -> None:
    base = live_server.url
    matter = Collection.objects.create(name="Duval v Meridian")
    pat = make_user("pat", first_name="Pat", last_name="Paralegal")
    Grant.objects.create(collection=matter, user=pat, role=Role.MANAGER)
    make_user("audrey", Group.objects.get(name=AUDITORS_GROUP))
    page = browser.person()
    _log_in(page, base, "pat")
    page.goto(f"{base}/collections/{matter.pk}/")
    page.get_by_label("Files (PDF or .zip)").set_input_files([str(cuad(JOINT_VENTURE)), str(cuad(WEB_HOSTING))])
    page.locator("#upload-submit").click()
    expect(page.locator("#upload-list li[data-status=ready]")).to_have_count(2, timeout=PROCESSING_TIMEOUT_MS)

    # --- Point 7: the finished answer keeps its source excerpts on reload. ------------------------------------
    page.goto(f"{base}/ask/")
    page.locator("#question").fill(JOINT_VENTURE_QUESTION)
    page.locator("#ask-submit").click()
    answer = page.locator(".answer[data-answer-id]").last
    expect(answer.locator(".answer-status")).to_have_text(re.compile(r"^\s*(done|abstained|failed)\s*$"),
                                                          timeout=ANSWER_TIMEOUT_MS)
    streamed = answer.locator(".sources .source-text").count()
    assert streamed >= 1
    page.reload()
    answer = page.locator(".answer[data-answer-id]").last
    assert answer.locator(".sources .source").count() == streamed
    expect(answer.locator(".sources .source-text")).to_have_count(streamed)
    assert len(answer.locator(".sources .source-text").first.inner_text()) > 40
    Browser.screenshot(page, "12-7-answer-reloaded")

    # --- Point 6: the auditor lands on the audit page and reads names, not ids. -------------------------------
    venture = Document.objects.get(collection=matter, original_name=JOINT_VENTURE)
    hosting = Document.objects.get(collection=matter, original_name=WEB_HOSTING)
    page.goto(f"{base}/documents/{hosting.pk}/")  # a page view of the document to be erased
    document_delete(document=hosting, actor=Actor(user=pat))
    auditor = browser.person()
    _log_in(auditor, base, "audrey")
    assert auditor.url == f"{base}/audit/"
    assert auditor.get_by_role("link", name="Ask").count() == 0
    expect(auditor.locator(".chain-status")).to_contain_text("Chain verified")
    asked = auditor.locator('tr.audit-event[data-action="question.ask"]').first
    assert JOINT_VENTURE_QUESTION in asked.locator(".what").inner_text()
    assert asked.locator(".audit-collections").inner_text() == "Duval v Meridian"
    assert asked.locator("td").nth(2).inner_text() == "pat"
    shown = asked.locator(".audit-documents").inner_text()
    assert venture.display_title in shown
    assert asked.locator("dl.pairs dt", has_text="Passages shown").count() == 1
    assert "{" not in auditor.locator("tbody").inner_text()
    Browser.screenshot(auditor, "12-6-audit")
    # The erased document is "erased" everywhere on the page; its title is gone.
    erased = auditor.locator('tr.audit-event[data-action="document.delete"]').first
    assert "erased" in erased.locator(".audit-documents").inner_text()
    assert hosting.display_title not in auditor.content()

    # Filters by names, combined with the others.
    auditor.get_by_label("Person").fill("pat")
    auditor.get_by_label("Collection").fill("Duval")
    auditor.get_by_label("Document (title or file name)").fill("joint venture")
    auditor.get_by_role("button", name="Filter").click()
    auditor.wait_for_url(re.compile(r"/audit/\?.*collection=Duval"))
    actions = set(auditor.locator("tr.audit-event").evaluate_all("rows => rows.map(r => r.dataset.action)"))
    assert "question.ask" in actions and "document.upload" in actions
    assert all(t == "pat" for t in auditor.locator("tr.audit-event td:nth-child(3)").all_inner_texts())
    Browser.screenshot(auditor, "12-6-audit-filtered")
    auditor.get_by_label("Action").select_option("question.ask")
    auditor.get_by_role("button", name="Filter").click()
    expect(auditor.locator("tr.audit-event")).to_have_count(1)
    # The export still works on the same filters.
    with auditor.expect_download() as download:
        auditor.get_by_role("link", name="Export these events (CSV)").click()
    csv_text = Path(download.value.path()).read_text()
    assert "question.ask" in csv_text and "Duval" not in csv_text


def test_grant_by_picking_a_colleague_and_pages_fit_a_phone(services: None, live_server: Any,
                                                             browser: Browser) -> None:
    base = live_server.url
    matter = Collection.objects.create(name="Estate of Hartley-Montgomery-Fitzwilliam (probate, 2024)")
    manager = make_user("mia", first_name="Mia", last_name="Manager")
    Grant.objects.create(collection=matter, user=manager, role=Role.MANAGER)
    make_user("pat", first_name="Pat", last_name="Paralegal")
    make_user("gone", first_name="Former", last_name="Clerk", is_active=False)
    make_user("audrey", Group.objects.get(name=AUDITORS_GROUP), first_name="Audrey", last_name="Auditor")
    page = browser.person()
    _log_in(page, base, "mia")
    page.goto(f"{base}/collections/{matter.pk}/access/")
    options = page.locator("datalist#people option").evaluate_all("os => os.map(o => o.textContent)")
    assert "Pat Paralegal (user)" in options
    assert not any("Former Clerk" in o or "Audrey" in o for o in options)
    assert page.locator("#id_grant-name").get_attribute("list") == "people"
    # A name nobody has: a styled refusal next to the field.
    page.locator("#id_grant-name").fill("Pat Paralegel")
    page.get_by_role("button", name="Give role").click()
    error = page.locator(".errorlist").first
    expect(error).to_contain_text("No user is called “Pat Paralegel”")
    assert error.evaluate("e => getComputedStyle(e).borderLeftStyle") == "solid"
    Browser.screenshot(page, "12-8-grant-refused")
    # The full name, as people know each other, is enough.
    page.locator("#id_grant-name").fill("Pat Paralegal")
    page.get_by_role("button", name="Give role").click()
    expect(page.locator(".messages")).to_contain_text("now holds the role")
    assert Grant.objects.filter(collection=matter, user__username="pat", role=Role.VIEWER).exists()

    # --- 390 px: the library and the collection fit; the page text keeps every line. -------------------------
    Grant.objects.create(collection=matter, user=make_user("pete"), role=Role.VIEWER)
    long_name = "Last-will-and-testament-of-Harold-Hartley-Montgomery-Fitzwilliam-signed-copy-2019.pdf"
    Document.objects.create(collection=matter, title=long_name[:-4], original_name=long_name, stored_name="w.pdf",
                            sha256="cd" * 32, size_bytes=1, status=DocumentStatus.FAILED,
                            error="damaged PDF: the cross-reference table is broken beyond repair")
    venture = _ingested(matter, browser, base)
    phone = browser.person()
    phone.set_viewport_size(PHONE)
    _log_in(phone, base, "pete")
    _fits(phone)
    Browser.screenshot(phone, "12-8-library-390")
    phone.goto(f"{base}/collections/{matter.pk}/")
    _fits(phone)
    Browser.screenshot(phone, "12-8-collection-390")
    for viewport in (PHONE, {"width": 1366, "height": 800}):
        phone.set_viewport_size(viewport)
        phone.goto(f"{base}/documents/{venture.pk}/?page=1")
        text = phone.locator(".page-text .text")
        text.wait_for()
        assert "\u00a0" not in text.inner_text()
        overflow = text.evaluate("e => e.scrollWidth - e.clientWidth")
        assert overflow <= 0, f"the page text is cut by {overflow} px at {viewport['width']} px"
        if viewport is PHONE:
            _fits(phone)
    Browser.screenshot(phone, "12-8-viewer-nbsp")


def _ingested(matter: Collection, browser: Browser, base: str) -> Document:
    """The Joint Venture contract (full of U+00A0 in its text layer) uploaded by the manager and ready."""
    raw = cuad(JOINT_VENTURE)
    assert any("\u00a0" in page.get_text() for page in pymupdf.open(raw))
    page = browser.person()
    _log_in(page, base, "mia")
    page.goto(f"{base}/collections/{matter.pk}/")
    page.get_by_label("Files (PDF or .zip)").set_input_files([str(raw)])
    page.locator("#upload-submit").click()
    expect(page.locator("#upload-list li[data-status=ready]")).to_have_count(1, timeout=PROCESSING_TIMEOUT_MS)
    return Document.objects.get(collection=matter, original_name=JOINT_VENTURE)



def test_a_new_document_outside_the_tables_filter_asks_for_one_refresh_only(
        services: None, live_server: Any, browser: Browser) -> None:
    base = live_server.url
    matter = Collection.objects.create(name="Matter filtered")
    Grant.objects.create(collection=matter, user=make_user("pat"), role=Role.CONTRIBUTOR)
    page = browser.person()
    _log_in(page, base, "pat")
    filtered = f"{base}/collections/{matter.pk}/?status=failed"
    page.goto(filtered)
    page.get_by_label("Files (PDF or .zip)").set_input_files([str(cuad(WEB_HOSTING))])
    page.locator("#upload-submit").click()
    expect(page.locator("#upload-list li[data-status=ready]")).to_have_count(1, timeout=PROCESSING_TIMEOUT_MS)
    page.wait_for_timeout(4000)
    # The first load, one refresh for the new document, one when it finished: not one every poll.
    loads = [url for url in browser.requests if url == filtered]
    assert len(loads) <= 3, len(loads)
    assert page.locator("#documents tr.document-row").count() == 0
