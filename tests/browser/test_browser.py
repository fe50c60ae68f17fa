"""The whole product in a real browser: headless Chromium against the live app, with the real Redis, Chroma
and Celery worker (ingestion and the answer model) behind it.

A paralegal bulk-uploads contracts and a password-protected file, watches them process, asks a question,
follows the evidence into the page viewer; an auditor finds each step in the audit log; an outsider sees
nothing. Screenshots land in test-artifacts/screenshots/; every request the browser made must have gone to
the app itself."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from playwright.sync_api import expect

from docs_app.models import Collection, Conversation, Document, Grant, Role
from tests.browser.conftest import Browser
from tests.data import MAINTENANCE, SPONSORSHIP, WEB_HOSTING, cuad, hostile
from tests.harness import PASSWORD, make_user

pytestmark = [pytest.mark.browser, pytest.mark.services, pytest.mark.django_db(transaction=True)]

CONTRACTS = [SPONSORSHIP, WEB_HOSTING, MAINTENANCE]
LOCKED = "pdfminer__rc4-40.pdf"
QUESTION = "What insurance must the Vendor maintain?"
PROCESSING_TIMEOUT_MS = 300_000
# An answer ends (done, abstained or failed with its reason) within two minutes, or the test fails fast.
ANSWER_TIMEOUT_MS = 120_000


def _log_in(page: Any, base: str, name: str, *, screenshot: str = "") -> None:
    page.goto(f"{base}/login/")
    page.get_by_label("User name").fill(name)
    page.get_by_label("Password").fill(PASSWORD)
    if screenshot:
        Browser.screenshot(page, screenshot)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{base}/")


def _assert_only_app_requests(browser: Browser, base: str) -> None:
    foreign = [url for url in browser.requests if not url.startswith((f"{base}/", "data:"))]
    assert browser.requests and not foreign, foreign


def _highlighted_pixels(page: Any) -> int:
    """Counts yellow-tinted pixels of the page image in the browser itself (a contract page is greyscale)."""
    return int(page.evaluate("""() => {
        const img = document.getElementById("page-image");
        const canvas = document.createElement("canvas");
        canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
        const ctx = canvas.getContext("2d");
        ctx.drawImage(img, 0, 0);
        const data = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
        let n = 0;
        for (let i = 0; i < data.length; i += 4) { if (data[i] - data[i + 2] > 60) { n++; } }
        return n;
    }"""))


def test_upload_ask_cite_view_audit_and_nothing_for_outsiders(services: None, live_server: Any,
                                                             browser: Browser) -> None:
    base = live_server.url
    matter = Collection.objects.create(name="Matter 2024-17", description="Sponsorship and hosting contracts")
    Grant.objects.create(collection=matter, user=make_user("paralegal"), role=Role.CONTRIBUTOR)
    auditor = make_user("auditor", is_staff=True)
    auditor.user_permissions.add(Permission.objects.get(codename="review_audit"))
    make_user("outsider")

    # --- The paralegal uploads contracts and a locked file, and watches them process. -------------------
    page = browser.person()
    _log_in(page, base, "paralegal", screenshot="01-login")
    assert page.locator("tr.collection-row").count() == 1
    Browser.screenshot(page, "02-library")
    page.get_by_role("link", name="Matter 2024-17").click()
    files = [str(cuad(name)) for name in CONTRACTS] + [str(hostile(LOCKED))]
    page.get_by_label("Files (PDF or .zip)").set_input_files(files)
    page.locator("#upload-submit").click()
    items = page.locator("#upload-list li")
    # The page's CSP forbids eval, so waits are locator assertions rather than wait_for_function.
    expect(page.locator("#upload-list li[data-outcome=queued]")).to_have_count(4)
    Browser.screenshot(page, "03-collection-processing")
    expect(page.locator("#upload-list li[data-status=ready]")).to_have_count(3, timeout=PROCESSING_TIMEOUT_MS)
    expect(page.locator("#upload-list li[data-status=failed]")).to_have_count(1, timeout=PROCESSING_TIMEOUT_MS)
    locked_item = items.filter(has_text=LOCKED)
    assert "Failed" in locked_item.locator(".doc-status").inner_text()
    assert "password protected" in locked_item.locator(".doc-error").inner_text()
    # The table is refreshed from the server once everything settled: links for the ready ones, the reason
    # and what to do for the locked one, and no Retry button where retrying cannot help.
    expect(page.locator("tr.document-row[data-status=ready] a")).to_have_count(3)
    locked_row = page.locator("tr.document-row", has_text="pdfminer")
    assert "password protected" in locked_row.inner_text()
    assert "without a password" in locked_row.inner_text()
    assert locked_row.get_by_role("button", name="Retry").count() == 0
    assert page.locator('[data-count="ready"]').inner_text() == "3"
    Browser.screenshot(page, "04-collection-done")

    # Without JavaScript the same form posts the files and the server lists each outcome.
    plain = browser.person(javascript=False)
    _log_in(plain, base, "paralegal")
    plain.goto(page.url)
    plain.get_by_label("Files (PDF or .zip)").set_input_files([str(cuad(CONTRACTS[0]))])
    plain.get_by_role("button", name="Upload").click()
    expect(plain.locator("tr.outcome")).to_have_count(1)
    assert plain.locator("tr.outcome").get_attribute("data-outcome") == "duplicate"
    Browser.screenshot(plain, "04b-upload-without-javascript")

    # --- Ask; the answer streams in with its sources. --------------------------------------------------
    page.get_by_role("link", name="Ask").first.click()
    page.locator("#question").fill(QUESTION)
    page.locator("#ask-submit").click()
    answer = page.locator(".answer[data-answer-id]").last
    answer.wait_for()
    expect(answer.locator(".answer-status")).to_have_text(re.compile(r"^\s*(done|abstained|failed)\s*$"),
                                                          timeout=ANSWER_TIMEOUT_MS)
    status = (answer.locator(".answer-status").text_content() or "").strip()
    assert status == "done", answer.inner_text()
    # Either an answer, or a plain statement that the model's output was not one (the stand-in usually echoes
    # its instructions): never the echoed rules dressed as a cited answer.
    usable = answer.locator(".unusable").count() == 0
    assert answer.locator(".answer-text").inner_text().strip() if usable else \
        "Rules:" not in answer.inner_text()
    # The text came through the answer stream (Server-Sent Events), not only from a later page render.
    answer_id = answer.get_attribute("data-answer-id")
    assert any(f"/answers/{answer_id}/stream/" in url for url in browser.requests)
    assert answer.locator(".sources .source").count() >= 1
    Browser.screenshot(page, "05-answer")
    # A citation marker links to the viewer when the model wrote a valid [n]; the small stand-in model often
    # does not, and then the sources panel is the evidence link (same viewer URL, same highlight).
    citations = answer.locator("a.citation")
    # An answer that links no source says so plainly instead of passing for grounded text.
    assert answer.locator(".uncited").count() == (0 if citations.count() or not usable else 1)
    evidence = citations.first if citations.count() else answer.locator(".sources .source a").first
    print(f"evidence link used: {'a.citation' if citations.count() else '.sources .source a'}")
    href = evidence.get_attribute("href")
    assert href is not None and re.fullmatch(r"/documents/\d+/\?page=\d+&chunk=\d+", href), href

    # --- The viewer shows the cited page with the passage highlighted. ---------------------------------
    evidence.click()
    page.wait_for_url(re.compile(r".*/documents/\d+/\?page=\d+&chunk=\d+"))
    image = page.locator("#page-image")
    expect(image).to_have_js_property("complete", True)
    assert image.evaluate("img => img.naturalWidth") > 0
    assert _highlighted_pixels(page) > 200
    assert page.locator("mark#cited").inner_text().strip()
    assert page.get_by_role("link", name="Download PDF").count() == 1  # a contributor may take a copy
    Browser.screenshot(page, "06-viewer")

    # --- Someone without a grant sees none of it, even with the URLs. ----------------------------------
    document = Document.objects.filter(collection=matter, status="ready").first()
    assert document is not None
    conversation = Conversation.objects.get(owner__username="paralegal")
    outsider = browser.person()
    _log_in(outsider, base, "outsider")
    assert outsider.locator("tr.collection-row").count() == 0
    assert "Matter 2024-17" not in outsider.content()
    Browser.screenshot(outsider, "07-outsider-library")
    for url in (f"/collections/{matter.pk}/", f"/collections/{matter.pk}/status.json",
                f"/documents/{document.pk}/", f"/documents/{document.pk}/pages/1.png",
                f"/documents/{document.pk}/download/", f"/ask/{conversation.pk}/"):
        response = outsider.goto(f"{base}{url}")
        assert response is not None and response.status == 404, url

    # --- An administrator (also the auditor) checks the system ... -------------------------------------
    audit_page = browser.person()
    _log_in(audit_page, base, "auditor")
    audit_page.goto(f"{base}/status/")
    assert audit_page.locator("#redis-status").inner_text().startswith("reachable")
    assert audit_page.locator("#chroma-status").inner_text().startswith("reachable")
    assert audit_page.locator("#workers .tag").count() >= 1
    Browser.screenshot(audit_page, "08-status")
    _assert_only_app_requests(browser, base)

    # --- ... and finds every step in the audit log. -----------------------------------------------------
    audit_page.goto(f"{base}/audit/")
    rows = audit_page.locator(".audit-event")
    rows.first.wait_for()
    logged = "\n".join(rows.all_inner_texts())
    for action in ("document.upload", "document.ingest", "question.ask", "document.page_view"):
        assert action in logged, f"{action} missing from the audit page"
    assert audit_page.locator(".chain-status").inner_text().strip()
    Browser.screenshot(audit_page, "09-audit")

    # --- Nothing went anywhere but the app. -------------------------------------------------------------
    _assert_only_app_requests(browser, base)


def test_a_typed_question_survives_a_reload_and_ctrl_enter_asks(services: None, live_server: Any,
                                                                browser: Browser) -> None:
    base = live_server.url
    Grant.objects.create(collection=Collection.objects.create(name="Matter drafts"), user=make_user("typist"),
                         role=Role.VIEWER)
    page = browser.person()
    _log_in(page, base, "typist")
    page.goto(f"{base}/ask/")
    page.locator("#question").fill("What is the notice period for termination?")
    page.reload()  # an idle logout and the login after it bring the person back to this page the same way
    expect(page.locator("#question")).to_have_value("What is the notice period for termination?")
    Browser.screenshot(page, "draft-restored")
    page.locator("#question").press("Control+Enter")
    page.wait_for_url(re.compile(r"/ask/\d+/(#answer-\d+)?$"))
    conversation = Conversation.objects.get(owner__username="typist")
    assert conversation.questions.get().text == "What is the notice period for termination?"
    # Asked: the draft is gone, a new question starts empty.
    page.goto(f"{base}/ask/")
    expect(page.locator("#question")).to_have_value("")
