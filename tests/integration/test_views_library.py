"""The library, upload, viewer and status views through Django's test client.

These run without the worker: uploads are checked up to "queued" (the ingest task is enqueued on commit,
which a non-transactional test never reaches), and the viewer is fed a READY document whose Chunk rows are
cut from a real CUAD contract exactly as ingestion cuts them. The browser test drives the whole stack."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pymupdf
import pytest
import redis
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile

from docs_app.models import AuditEvent, Chunk, Collection, Document, DocumentStatus, Grant, Role
from docs_app.pipeline.chunking import chunk_pages
from docs_app.pipeline.pdf_extract import ExtractedPage
from docs_app.services.model_status import MODEL_STATUS_KEY
from docs_app.storage import page_cache_dir
from tests.data import SPONSORSHIP, WEB_HOSTING, cuad
from tests.harness import logged_in, make_user

pytestmark = pytest.mark.django_db

JSON = {"Accept": "application/json"}


def _user(name: str, collection: Collection | None = None, role: str | None = None) -> User:
    user = make_user(name)
    if collection is not None and role is not None:
        Grant.objects.create(collection=collection, user=user, role=role)
    return user


def _pdf(path: Path, name: str | None = None) -> SimpleUploadedFile:
    return SimpleUploadedFile(name or path.name, path.read_bytes(), content_type="application/pdf")


def _zip(members: dict[str, bytes]) -> SimpleUploadedFile:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return SimpleUploadedFile("batch.zip", buffer.getvalue(), content_type="application/zip")


@pytest.fixture
def collection() -> Collection:
    return Collection.objects.create(name="Matter 7")


@pytest.fixture
def ready_document(collection: Collection, settings) -> Iterator[Document]:
    """A document as ingestion leaves it: stored file, READY, page-anchored chunks with page-text offsets."""
    stored = f"{uuid.uuid4().hex}.pdf"
    Path(settings.MEDIA_ROOT).mkdir(parents=True, exist_ok=True)
    shutil.copyfile(cuad(SPONSORSHIP), Path(settings.MEDIA_ROOT) / stored)
    with pymupdf.open(cuad(SPONSORSHIP)) as pdf:
        pages = [ExtractedPage(number=i + 1, text=page.get_text("text")) for i, page in enumerate(pdf)]
    data = cuad(SPONSORSHIP).read_bytes()
    document = Document.objects.create(
        collection=collection, title="Sponsorship agreement", original_name=SPONSORSHIP, stored_name=stored,
        sha256=hashlib.sha256(data).hexdigest(), size_bytes=len(data), page_count=len(pages),
        pages_done=len(pages), status=DocumentStatus.READY, progress=100,
    )
    spans = chunk_pages(pages, max_tokens=120, overlap_tokens=20, token_len=lambda text: len(text.split()))
    Chunk.objects.bulk_create(Chunk(document=document, ordinal=s.ordinal, page=s.page, char_start=s.char_start,
                                    char_end=s.char_end, text=s.text, embedding=b"") for s in spans)
    yield document
    shutil.rmtree(page_cache_dir(document), ignore_errors=True)


def _highlight_pixels(png: bytes) -> int:
    """Pixels tinted by the yellow highlight: a contract page is otherwise black, grey and white."""
    pixmap = pymupdf.Pixmap(png)
    samples, n = pixmap.samples, pixmap.n
    return sum(1 for i in range(0, len(samples), n * 7) if samples[i] - samples[i + 2] > 60)


# --- Upload ----------------------------------------------------------------------------------------------

def test_upload_reports_each_file_as_json(collection: Collection, tmp_path: Path) -> None:
    client = logged_in(_user("paralegal", collection, Role.CONTRIBUTOR))
    files = [_pdf(cuad(SPONSORSHIP)), _pdf(cuad(SPONSORSHIP), "copy.pdf"),
             SimpleUploadedFile("scan.pdf", b"\x89PNG\r\n\x1a\n" + b"\0" * 64),
             SimpleUploadedFile("blank.pdf", b"")]
    response = client.post(f"/collections/{collection.pk}/upload/", {"files": files}, headers=JSON)
    assert response.status_code == 200
    outcomes = response.json()["outcomes"]
    assert [o["status"] for o in outcomes] == ["queued", "duplicate", "rejected", "rejected"]
    assert outcomes[0]["document_id"] == outcomes[1]["document_id"]
    assert "not a PDF" in outcomes[2]["reason"] and "PNG" in outcomes[2]["reason"]
    assert "empty" in outcomes[3]["reason"]
    document = Document.objects.get(pk=outcomes[0]["document_id"])
    assert document.status == DocumentStatus.QUEUED
    assert document.uploaded_by is not None and document.uploaded_by.username == "paralegal"


def test_upload_without_javascript_renders_the_outcome_list(collection: Collection) -> None:
    client = logged_in(_user("paralegal", collection, Role.CONTRIBUTOR))
    response = client.post(f"/collections/{collection.pk}/upload/",
                           {"files": [_pdf(cuad(SPONSORSHIP)), SimpleUploadedFile("notes.pdf", b"just text")]})
    assert response.status_code == 200
    html = response.content.decode()
    assert html.count('class="outcome"') == 2
    assert 'data-outcome="queued"' in html and 'data-outcome="rejected"' in html
    assert "not a PDF (looks like plain text)" in html


def test_files_over_the_per_request_limit_are_rejected_not_dropped(collection: Collection, settings) -> None:
    settings.UPLOAD_MAX_FILES = 1
    client = logged_in(_user("paralegal", collection, Role.CONTRIBUTOR))
    response = client.post(f"/collections/{collection.pk}/upload/",
                           {"files": [_pdf(cuad(SPONSORSHIP)), _pdf(cuad(WEB_HOSTING))]}, headers=JSON)
    outcomes = response.json()["outcomes"]
    assert [o["status"] for o in outcomes] == ["queued", "rejected"]
    assert "limit of 1 files" in outcomes[1]["reason"]


def test_upload_needs_a_contributor_role_and_hides_unreadable_collections(collection: Collection) -> None:
    viewer = logged_in(_user("reader", collection, Role.VIEWER))
    stranger = logged_in(_user("stranger"))
    url = f"/collections/{collection.pk}/upload/"
    assert viewer.post(url, {"files": [_pdf(cuad(SPONSORSHIP))]}, headers=JSON).status_code == 403
    assert stranger.post(url, {"files": [_pdf(cuad(SPONSORSHIP))]}, headers=JSON).status_code == 404
    assert not Document.objects.exists()


def test_zip_members_each_get_an_outcome_and_names_never_reach_the_disk(collection: Collection,
                                                                         settings) -> None:
    client = logged_in(_user("paralegal", collection, Role.CONTRIBUTOR))
    pdf = cuad(SPONSORSHIP).read_bytes()
    archive = _zip({
        "contracts/2010/sponsorship.pdf": pdf,
        "contracts/readme.txt": b"see the PDFs",
        "../../escaped.pdf": cuad(WEB_HOSTING).read_bytes(),
        "__MACOSX/contracts/._sponsorship.pdf": b"\0\5\26\7",
    })
    response = client.post(f"/collections/{collection.pk}/upload/", {"files": [archive]}, headers=JSON)
    outcomes = {o["name"]: o for o in response.json()["outcomes"]}
    assert set(outcomes) == {"batch.zip/contracts/2010/sponsorship.pdf", "batch.zip/contracts/readme.txt",
                             "batch.zip/../../escaped.pdf"}
    assert outcomes["batch.zip/contracts/2010/sponsorship.pdf"]["status"] == "queued"
    assert outcomes["batch.zip/contracts/readme.txt"]["reason"] == "not a PDF (.txt file)"
    assert "unsafe path" in outcomes["batch.zip/../../escaped.pdf"]["reason"]
    document = Document.objects.get()
    assert document.title == "sponsorship" and document.original_name == "sponsorship.pdf"
    data_dir = Path(settings.DATA_DIR)
    assert not list(data_dir.parent.rglob("escaped*")) and not list(data_dir.rglob("sponsorship*"))


def test_zip_over_the_member_or_size_limit_is_rejected_whole(collection: Collection, settings) -> None:
    client = logged_in(_user("paralegal", collection, Role.CONTRIBUTOR))
    url = f"/collections/{collection.pk}/upload/"
    settings.ZIP_MAX_MEMBERS = 2
    crowded = _zip({f"c{i}.pdf": b"%PDF-1.4 " + bytes([i]) for i in range(3)})
    outcomes = client.post(url, {"files": [crowded]}, headers=JSON).json()["outcomes"]
    assert [(o["name"], o["status"]) for o in outcomes] == [("batch.zip", "rejected")]
    assert "too many files (3 > limit 2)" in outcomes[0]["reason"]

    settings.ZIP_MAX_MEMBERS = 10
    settings.ZIP_MAX_UNCOMPRESSED_MB = 1
    bomb = _zip({"big.pdf": b"%PDF-1.4\n" + b"0" * (3 * 1024 * 1024)})  # a few KB compressed
    outcomes = client.post(url, {"files": [bomb]}, headers=JSON).json()["outcomes"]
    assert outcomes[0]["status"] == "rejected" and "expands to 3 MB (limit 1 MB)" in outcomes[0]["reason"]
    assert not Document.objects.exists()


# --- Library pages and live status --------------------------------------------------------------------

def test_library_and_collection_pages_list_what_the_user_may_read(collection: Collection,
                                                                  ready_document: Document) -> None:
    Collection.objects.create(name="Walled matter")
    reader = logged_in(_user("reader", collection, Role.VIEWER))
    html = reader.get("/").content.decode()
    assert "Matter 7" in html and "Walled matter" not in html
    page = reader.get(f"/collections/{collection.pk}/").content.decode()
    assert "Sponsorship agreement" in page
    assert 'id="upload-form"' not in page and "Delete" not in page  # a viewer neither uploads nor deletes
    assert "Sponsorship" not in reader.get(f"/collections/{collection.pk}/?status=failed").content.decode()
    assert "Sponsorship" in reader.get(f"/collections/{collection.pk}/?q=sponsor").content.decode()
    assert "Sponsorship" not in reader.get(f"/collections/{collection.pk}/?q=lease").content.decode()
    stranger = logged_in(_user("stranger"))
    assert "Matter 7" not in stranger.get("/").content.decode()
    assert stranger.get(f"/collections/{collection.pk}/").status_code == 404


def test_status_json_reports_progress_and_failure_reasons(collection: Collection,
                                                          ready_document: Document) -> None:
    failed = Document.objects.create(collection=collection, title="Locked", original_name="locked.pdf",
                                     stored_name="x.pdf", sha256="1" * 64, size_bytes=1,
                                     status=DocumentStatus.FAILED, error="password protected")
    running = Document.objects.create(collection=collection, title="Big", original_name="big.pdf",
                                      stored_name="y.pdf", sha256="2" * 64, size_bytes=1, page_count=40,
                                      pages_done=10, progress=12, status=DocumentStatus.EXTRACTING)
    client = logged_in(_user("reader", collection, Role.VIEWER))
    data = client.get(f"/collections/{collection.pk}/status.json").json()
    rows = {row["id"]: row for row in data["documents"]}
    assert set(rows) == {ready_document.pk, failed.pk, running.pk}
    expected = {"status": "extracting", "progress": 12, "pages_done": 10, "page_count": 40, "terminal": False}
    assert {key: rows[running.pk][key] for key in expected} == expected
    assert rows[failed.pk]["error"] == "password protected" and rows[failed.pk]["retryable"] is False
    assert "without a password" in rows[failed.pk]["hint"]
    assert data["counts"] == {"queued": 0, "extracting": 1, "embedding": 0, "ready": 1, "failed": 1}
    only = client.get(f"/collections/{collection.pk}/status.json?ids={running.pk}").json()["documents"]
    assert [row["id"] for row in only] == [running.pk]
    assert logged_in(_user("stranger")).get(f"/collections/{collection.pk}/status.json").status_code == 404


def test_retry_requeues_transient_failures_only(collection: Collection) -> None:
    def failed(title: str, reason: str) -> Document:
        return Document.objects.create(collection=collection, title=title, original_name=f"{title}.pdf",
                                       stored_name=f"{title}.pdf", sha256=hashlib.sha256(title.encode()).hexdigest(),
                                       size_bytes=1, status=DocumentStatus.FAILED, error=reason, attempts=3)
    slow = failed("slow", "extraction timed out after 300 s")
    locked = failed("locked", "password protected")
    assert logged_in(_user("reader", collection, Role.VIEWER)).post(f"/documents/{slow.pk}/retry/").status_code == 403
    client = logged_in(_user("paralegal", collection, Role.CONTRIBUTOR))
    page = client.get(f"/collections/{collection.pk}/").content.decode()
    assert page.count(">Retry<") == 1 and "Upload a copy without a password" in page
    assert client.post(f"/documents/{slow.pk}/retry/").status_code == 302
    slow.refresh_from_db()
    assert (slow.status, slow.error, slow.attempts, slow.version) == (DocumentStatus.QUEUED, "", 0, 1)
    assert AuditEvent.objects.filter(action="document.retry", document_id_ref=slow.pk).count() == 1
    client.post(f"/documents/{locked.pk}/retry/")
    locked.refresh_from_db()
    assert locked.status == DocumentStatus.FAILED


def test_delete_asks_first_and_is_for_managers(collection: Collection, ready_document: Document) -> None:
    contributor = logged_in(_user("paralegal", collection, Role.CONTRIBUTOR))
    assert contributor.post(f"/documents/{ready_document.pk}/delete/").status_code == 403
    manager = logged_in(_user("partner", collection, Role.MANAGER))
    confirm = manager.get(f"/documents/{ready_document.pk}/delete/")
    assert confirm.status_code == 200 and "Delete for good" in confirm.content.decode()
    assert Document.objects.filter(pk=ready_document.pk).exists()
    assert manager.post(f"/documents/{ready_document.pk}/delete/").status_code == 302
    assert not Document.objects.filter(pk=ready_document.pk).exists()
    assert not Chunk.objects.filter(document_id=ready_document.pk).exists()


# --- Viewer --------------------------------------------------------------------------------------------

def test_viewer_opens_the_cited_page_with_the_passage_marked_and_audits_it(collection: Collection,
                                                                           ready_document: Document) -> None:
    chunk = Chunk.objects.filter(document=ready_document, page=2).order_by("ordinal")[1]
    client = logged_in(_user("reader", collection, Role.VIEWER))
    response = client.get(f"/documents/{ready_document.pk}/?chunk={chunk.pk}")
    html = response.content.decode()
    assert response.status_code == 200
    assert f'/documents/{ready_document.pk}/pages/2.png?chunk={chunk.pk}' in html
    marked = html.split('<mark id="cited">', 1)[1].split("</mark>", 1)[0]
    assert " ".join(marked.split())[:60] == " ".join(chunk.text.split())[:60]
    assert "Download PDF" not in html  # viewers read here; they do not take copies
    event = AuditEvent.objects.get(action="document.page_view")
    assert event.details == {"page": 2, "chunk": chunk.pk} and event.actor_name == "reader"
    assert client.get(f"/documents/{ready_document.pk}/?page=99").status_code == 200  # clamped to the last page
    assert logged_in(_user("stranger")).get(f"/documents/{ready_document.pk}/").status_code == 404


def test_page_image_highlights_only_a_chunk_of_this_document(collection: Collection,
                                                             ready_document: Document) -> None:
    chunk = Chunk.objects.filter(document=ready_document, page=2).order_by("ordinal")[1]
    other = Document.objects.create(collection=collection, title="Other", original_name="o.pdf",
                                    stored_name="o.pdf", sha256="3" * 64, size_bytes=1)
    foreign = Chunk.objects.create(document=other, ordinal=0, page=2, char_start=chunk.char_start,
                                   char_end=chunk.char_end, text=chunk.text, embedding=b"")
    client = logged_in(_user("reader", collection, Role.VIEWER))
    base = f"/documents/{ready_document.pk}/pages/2.png"
    plain = client.get(base)
    highlighted = client.get(f"{base}?chunk={chunk.pk}")
    ignored = client.get(f"{base}?chunk={foreign.pk}")
    for response in (plain, highlighted, ignored):
        assert response.status_code == 200 and response["Content-Type"] == "image/png"
        assert response["Cache-Control"] == "private, no-store"
    png = highlighted.getvalue()
    assert png.startswith(b"\x89PNG")
    assert _highlight_pixels(png) > 200
    assert _highlight_pixels(plain.getvalue()) == 0
    assert _highlight_pixels(ignored.getvalue()) == 0
    assert not AuditEvent.objects.filter(action="document.page_view").exists()  # images are not page views
    assert client.get(f"/documents/{ready_document.pk}/pages/9.png").status_code == 404
    assert logged_in(_user("stranger")).get(base).status_code == 404


def test_download_is_for_contributors_and_managers(collection: Collection, ready_document: Document) -> None:
    url = f"/documents/{ready_document.pk}/download/"
    assert logged_in(_user("reader", collection, Role.VIEWER)).get(url).status_code == 403
    assert logged_in(_user("stranger")).get(url).status_code == 404
    response = logged_in(_user("paralegal", collection, Role.CONTRIBUTOR)).get(url)
    assert response.status_code == 200
    assert response.getvalue() == cuad(SPONSORSHIP).read_bytes()
    assert "attachment" in response["Content-Disposition"]
    assert AuditEvent.objects.filter(action="document.download", actor_name="paralegal").count() == 1


# --- Status -------------------------------------------------------------------------------------------

def test_status_page_is_for_staff_and_shows_the_loaded_model(redis_server: str, settings) -> None:
    client = redis.Redis.from_url(settings.REDIS_URL)
    client.delete(MODEL_STATUS_KEY)
    admin = make_user("admin", is_staff=True)
    html = logged_in(admin).get("/status/").content.decode()
    assert "No answer worker has started yet" in html
    assert 'id="redis-status">reachable' in html
    client.set(MODEL_STATUS_KEY, json.dumps({"name": "gemma-3-270m", "path": "/models/g.gguf",
                                             "size_bytes": 253_000_000, "sha256": "ab" * 32, "n_ctx": 2048,
                                             "loaded_at": "now", "pid": 7}))
    html = logged_in(admin).get("/status/").content.decode()
    assert "gemma-3-270m" in html and "ab" * 32 in html
    assert logged_in(_user("clerk")).get("/status/").status_code == 403
    client.delete(MODEL_STATUS_KEY)


def test_status_page_says_whether_ocr_can_run_and_what_to_install(redis_server: str, settings) -> None:
    admin = logged_in(make_user("admin", is_staff=True))
    html = admin.get("/status/").content.decode()
    assert 'id="ocr-state" class="ok">ready' in html and "eng" in html
    settings.OCR_LANGUAGES = "eng+xyz"
    html = admin.get("/status/").content.decode()
    assert 'id="ocr-state" class="bad">cannot run here' in html and "tesseract-ocr-xyz" in html
