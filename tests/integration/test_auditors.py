"""Auditors read the log and no document; names of documents and collections stay out of the log, its export and
the admin, where ids do (issue 10, item 8); the audit page names them from live rows (issue 12). Through the real
views, admin and export."""

from __future__ import annotations

import csv
import io

import pytest
from django.contrib.auth.models import Group, User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from docs_app.models import Document, Grant, Role
from docs_app.services.actor import Actor
from docs_app.services.grants import AUDITORS_GROUP, collection_create
from tests.data import WEB_HOSTING, cuad

pytestmark = pytest.mark.django_db
PASSWORD = "correct horse battery staple"
SECRET_FILE = "Hollowbrook-custody-evaluation.pdf"
SECRET_MATTER = "Hollowbrook v Hollowbrook"


def _client(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def people() -> dict[str, User]:
    auditors = Group.objects.get(name=AUDITORS_GROUP)
    audrey = User.objects.create_user("audrey", password=PASSWORD)
    audrey.groups.add(auditors)
    return {"manager": User.objects.create_user("mia", password=PASSWORD), "auditor": audrey,
            "root": User.objects.create_superuser("root", password=PASSWORD)}


def test_a_manager_cannot_grant_auditors_a_role_and_a_stray_grant_reads_nothing(people) -> None:
    manager, auditor = people["manager"], people["auditor"]
    matter = collection_create(name="Matter", actor=Actor(user=manager))
    with cuad(WEB_HOSTING).open("rb") as pdf:
        _client(manager).post(f"/collections/{matter.pk}/upload/", {"files": [pdf]})
    document = Document.objects.get(collection=matter)
    access = f"/collections/{matter.pk}/access/"
    for kind, name in (("group", AUDITORS_GROUP), ("user", "audrey")):
        page = _client(manager).post(access, {"action": "grant", "grant-kind": kind, "grant-name": name,
                                              "grant-role": "viewer"})
        assert page.status_code == 200 and "cannot be granted a role" in page.content.decode()
    assert not Grant.objects.filter(collection=matter).exclude(user=manager).exists()

    # A grant row made before this rule (or behind the service's back) gives an auditor nothing.
    Grant.objects.create(collection=matter, group=Group.objects.get(name=AUDITORS_GROUP), role=Role.VIEWER)
    reader = _client(auditor)
    assert reader.get(f"/documents/{document.pk}/").status_code == 404
    assert reader.get(f"/collections/{matter.pk}/").status_code == 404
    assert "Matter" not in reader.get("/").content.decode()


def test_the_export_and_the_admin_show_ids_not_names(people) -> None:
    manager = people["manager"]
    matter = collection_create(name=SECRET_MATTER, actor=Actor(user=manager))
    uploader = _client(manager)
    uploader.post(f"/collections/{matter.pk}/upload/",
                  {"files": [SimpleUploadedFile(SECRET_FILE, cuad(WEB_HOSTING).read_bytes())]})
    uploader.post(f"/collections/{matter.pk}/upload/",
                  {"files": [SimpleUploadedFile("Hollowbrook-photo.pdf", b"\x89PNG\r\n\x1a\n" + b"\0" * 64)]})
    document = Document.objects.get(collection=matter)
    assert uploader.post(f"/documents/{document.pk}/delete/").status_code == 302

    response = _client(people["auditor"]).get("/audit/export.csv")
    export = b"".join(response.streaming_content).decode()  # type: ignore[attr-defined]
    rows = list(csv.DictReader(io.StringIO(export)))
    assert {"document.upload", "document.delete", "collection.create"} <= {row["action"] for row in rows}
    assert "Hollowbrook" not in export
    # The page names what still exists from the live rows (issue 12, point 6): the matter, not the erased file.
    page = _client(people["auditor"]).get("/audit/").content.decode()
    assert SECRET_MATTER in page
    assert "custody-evaluation" not in page and "Hollowbrook-photo" not in page and ">erased<" in page

    other = collection_create(name="Other", actor=Actor(user=manager))
    kept = Document.objects.create(collection=other, title="Hollowbrook custody", original_name=SECRET_FILE,
                                   stored_name="k.pdf", sha256="ab" * 32, size_bytes=1)
    admin = _client(people["root"])
    for page in (admin.get("/admin/docs_app/document/"), admin.get(f"/admin/docs_app/document/{kept.pk}/change/"),
                 admin.get(f"/admin/docs_app/document/{kept.pk}/delete/")):
        assert page.status_code == 200
        assert "Hollowbrook" not in page.content.decode()
    # Searching by title would be an oracle for it.
    assert "0 results" in admin.get("/admin/docs_app/document/", {"q": "Hollowbrook"}).content.decode()
    assert "ab" * 32 in admin.get("/admin/docs_app/document/", {"q": "ab" * 32}).content.decode()
