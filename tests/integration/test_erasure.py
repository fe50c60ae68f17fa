"""Erasure leaves no text behind (issue 10, item 3). A PDF carrying a phrase found nowhere else is uploaded,
asked about (its passages travel through Redis) and erased; after the worker's compaction and a reindex, no file
of the run holds the phrase or the file's name: database and WAL, Redis's append-only files, Chroma, stored files
and renders. Then the answers that drew on it hold no text of it and the audit receipt no name."""

from __future__ import annotations

import secrets
import time
from pathlib import Path

import pymupdf
import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.core.management import call_command
from django.db import connection
from django.test import Client

from docs_app.models import Answer, AnswerStatus, AuditEvent, Document, DocumentStatus
from docs_app.services.actor import Actor
from docs_app.services.answering import REDACTED_TEXT
from docs_app.services.audit import Action
from docs_app.services.grants import collection_create
from tests.conftest import LOG_DIR, RUN_DIR, wait_until

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]
PASSWORD = "correct horse battery staple"


def _lease_pdf(path: Path, codeword: str) -> None:
    paragraphs = [
        "RESIDENTIAL LEASE AGREEMENT. This lease is made between the landlord, Harbour Lettings Limited, and the "
        "tenant named in schedule one, for the flat on the third floor of the building described below.",
        "Rent. The monthly rent is one thousand four hundred pounds, payable in advance on the first day of each "
        f"month. The tenant's key safe code word is {codeword} and may not be disclosed to anyone.",
        "Term. The lease runs for twelve months from the start date and renews monthly unless either party gives "
        "two months' written notice. The deposit is held in a government-approved scheme.",
    ]
    with pymupdf.open() as pdf:
        page = pdf.new_page()
        page.insert_textbox(pymupdf.Rect(50, 50, 550, 800), "\n\n".join(paragraphs), fontsize=11)
        pdf.save(path)


def _files_holding(*needles: bytes) -> list[str]:
    if connection.vendor == "sqlite":  # PostgreSQL's files are the server's, outside the run directory
        with connection.cursor() as cursor:  # what the worker's compaction also does; this connection may hold pages
            cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    found = []
    for path in RUN_DIR.rglob("*"):
        if path.is_file() and LOG_DIR not in path.parents and path.name != "netguard.log":
            data = path.read_bytes()
            found += [f"{path.relative_to(RUN_DIR)}: {needle.decode()}" for needle in needles if needle in data]
    return found


def test_an_erased_document_leaves_no_phrase_or_name_in_any_file(services: None, tmp_path: Path) -> None:
    token = secrets.token_hex(6)
    codeword, name_token = f"quillfeather{token}", f"ravensworth{token}"
    pdf = tmp_path / f"{name_token}-lease.pdf"
    _lease_pdf(pdf, codeword)
    manager = User.objects.create_user("mona", password=PASSWORD)
    collection = collection_create(name="Lettings", actor=Actor(user=manager))
    client = Client()
    client.force_login(manager)
    with pdf.open("rb") as upload:
        assert client.post(f"/collections/{collection.pk}/upload/", {"files": [upload]}).status_code == 200
    document = Document.objects.get(collection=collection)
    wait_until(lambda: Document.objects.get(pk=document.pk).is_terminal, what="ingestion")
    assert Document.objects.get(pk=document.pk).status == DocumentStatus.READY

    asked = client.post("/ask/", {"question": "What is the monthly rent, and what must the tenant not disclose?"},
                        HTTP_ACCEPT="application/json")
    assert asked.status_code == 201
    answer_id = asked.json()["answer_id"]
    wait_until(lambda: Answer.objects.get(pk=answer_id).status in {AnswerStatus.DONE, AnswerStatus.ABSTAINED},
               timeout_s=300, what="the answer")
    answer = Answer.objects.get(pk=answer_id)
    assert {s["document_id"] for s in answer.sources} == {document.pk}
    assert client.get(f"/documents/{document.pk}/pages/1.png").status_code == 200
    if connection.vendor == "sqlite":  # in the database file; PostgreSQL's are outside the run directory
        assert _files_holding(codeword.encode()), "the phrase should be on disk before the erasure"

    assert client.post(f"/documents/{document.pk}/delete/").status_code == 302
    call_command("reindex")

    needles = (codeword.encode(), name_token.encode())
    deadline = time.monotonic() + 120  # the worker's compaction runs after the erasure commits
    left = _files_holding(*needles)
    while left and time.monotonic() < deadline:
        time.sleep(2)
        left = _files_holding(*needles)
    assert left == []
    answer.refresh_from_db()
    assert answer.text == REDACTED_TEXT
    assert all("title" not in s for s in answer.sources) and all(s.get("erased") for s in answer.sources)
    receipt = AuditEvent.objects.get(action=Action.DELETE, document_id_ref=document.pk)
    assert set(receipt.details) == {"sha256", "size_bytes", "page_count"}
    assert (receipt.actor_name, receipt.details["sha256"]) == ("mona", document.sha256)
    assert not Path(settings.MEDIA_ROOT, document.stored_name).exists()
