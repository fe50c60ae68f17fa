"""Each upload is kept as a report a person can reopen (issue 12, point 5): every file's outcome, rejected files
and their reasons included, linked from the collection page; failures first, in the report and in the
documents table; an erased document's name leaves the report."""

from __future__ import annotations

import io
import zipfile

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command

from docs_app.models import Collection, Document, DocumentStatus, Grant, Role, UploadBatch, UploadItem
from docs_app.services.actor import Actor
from docs_app.services.documents import document_delete
from tests.data import SPONSORSHIP, WEB_HOSTING, cuad
from tests.harness import logged_in, make_user

pytestmark = pytest.mark.django_db
JSON = {"Accept": "application/json"}


def _member(role: str, name: str, collection: Collection) -> User:
    user = make_user(name)
    Grant.objects.create(collection=collection, user=user, role=role)
    return user


def _zip() -> SimpleUploadedFile:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("Matter files/2010/hosting.pdf", cuad(WEB_HOSTING).read_bytes())
        archive.writestr("Matter files/notes.docx", b"PK not a pdf")
    return SimpleUploadedFile("matter.zip", buffer.getvalue(), content_type="application/zip")


def test_a_browser_upload_is_one_report_with_refused_files_reopened_after_a_reload() -> None:
    matter = Collection.objects.create(name="Matter 12")
    pat = _member(Role.CONTRIBUTOR, "pat", matter)
    client = logged_in(pat)
    # The page opens the report first, with the files it would not send.
    opened = client.post(f"/collections/{matter.pk}/uploads/", {"not_sent": ["scan.tiff"]}, headers=JSON)
    assert opened.status_code == 201
    batch = opened.json()
    for upload in (SimpleUploadedFile(SPONSORSHIP, cuad(SPONSORSHIP).read_bytes()), _zip(),
                   SimpleUploadedFile("photo.pdf", b"\x89PNG\r\n\x1a\n" + b"\0" * 64)):
        response = client.post(f"/collections/{matter.pk}/upload/", {"files": [upload], "batch": batch["id"]},
                                headers=JSON)
        assert response.json()["batch"] == batch
    assert UploadBatch.objects.count() == 1

    page = client.get(batch["url"]).content.decode()
    rows = page.split('<tr class="outcome')[1:]
    assert len(rows) == 5
    # Problems first, each with its reason; archive members by their own name, the archive beside it.
    assert [("problem" in row) for row in rows] == [True, True, True, False, False]
    assert "scan.tiff" in page and "not a PDF or .zip archive (not sent)" in page
    assert "photo.pdf" in page and "notes.docx" in page and "not a PDF (.docx file)" in page
    assert ">hosting.pdf" in page and "in matter.zip/Matter files/2010" in page
    assert "matter.zip/Matter files/2010/hosting" not in page
    # Queued files show their document's status now.
    Document.objects.filter(original_name="hosting.pdf").update(status=DocumentStatus.FAILED, error="damaged PDF")
    rows = client.get(batch["url"]).content.decode().split('<tr class="outcome')[1:]
    assert sum("problem" in row for row in rows) == 4 and "damaged PDF" in "".join(rows[:4])

    collection_page = client.get(f"/collections/{matter.pk}/").content.decode()
    assert f'href="{batch["url"]}"' in collection_page and "5 files" in collection_page
    assert "3 rejected" in collection_page and "1 failed" in collection_page


def test_a_form_upload_without_javascript_keeps_its_report_and_only_readers_open_it() -> None:
    matter = Collection.objects.create(name="Matter 13")
    pat = _member(Role.CONTRIBUTOR, "pat", matter)
    page = logged_in(pat).post(f"/collections/{matter.pk}/upload/",
                               {"files": [SimpleUploadedFile("notes.txt", b"plain text")]}).content.decode()
    batch = UploadBatch.objects.get()
    url = f"/collections/{matter.pk}/uploads/{batch.pk}/"
    assert f'href="{url}"' in page
    assert logged_in(_member(Role.VIEWER, "vic", matter)).get(url).status_code == 200
    assert logged_in(make_user("stranger")).get(url).status_code == 404
    # A batch is only added to by the person who opened it.
    other = logged_in(_member(Role.CONTRIBUTOR, "cal", matter))
    other.post(f"/collections/{matter.pk}/upload/", {"files": [SimpleUploadedFile("x.txt", b"x")],
                                                      "batch": batch.pk}, headers=JSON)
    assert UploadItem.objects.filter(batch=batch).count() == 1 and UploadBatch.objects.count() == 2


def test_erasing_a_document_takes_its_name_out_of_the_report() -> None:
    matter = Collection.objects.create(name="Matter 14")
    pat = _member(Role.MANAGER, "pat", matter)
    client = logged_in(pat)
    client.post(f"/collections/{matter.pk}/upload/",
                {"files": [SimpleUploadedFile("Hollowbrook custody.pdf", cuad(SPONSORSHIP).read_bytes())]})
    document = Document.objects.get()
    document_delete(document=document, actor=Actor(user=pat))
    batch = UploadBatch.objects.get()
    page = client.get(f"/collections/{matter.pk}/uploads/{batch.pk}/").content.decode()
    assert "Hollowbrook" not in page and "(erased)" in page


def test_the_documents_table_lists_failures_first() -> None:
    matter = Collection.objects.create(name="Matter 15")
    pat = _member(Role.CONTRIBUTOR, "pat", matter)
    for n, status in enumerate([DocumentStatus.READY, DocumentStatus.FAILED, DocumentStatus.QUEUED,
                                DocumentStatus.QUEUED]):
        Document.objects.create(collection=matter, title=f"Doc {n} {status}", original_name=f"{n}.pdf",
                                stored_name=f"t{n}.pdf", sha256=f"{n:02d}" * 32, size_bytes=1, status=status)
    page = logged_in(pat).get(f"/collections/{matter.pk}/").content.decode()
    order = [part.split('data-status="', 1)[1].split('"', 1)[0] for part in page.split('class="document-row"')[1:]]
    assert order == ["failed", "queued", "queued", "ready"]


def test_a_folder_import_keeps_its_report_too(tmp_path) -> None:
    folder = tmp_path / "Drive"
    (folder / "2010").mkdir(parents=True)
    (folder / "2010" / "hosting.pdf").write_bytes(cuad(WEB_HOSTING).read_bytes())
    (folder / "readme.txt").write_text("see the PDFs")
    with pytest.raises(SystemExit):
        call_command("import_folder", str(folder), collection="Imported", stdout=io.StringIO())
    batch = UploadBatch.objects.get(collection__name="Imported")
    items = {item.name: item for item in batch.items.all()}
    assert set(items) == {"hosting.pdf", "readme.txt"}
    assert items["hosting.pdf"].status == "queued" and items["hosting.pdf"].archive == "Drive/2010"
    assert items["readme.txt"].status == "rejected" and items["readme.txt"].reason
