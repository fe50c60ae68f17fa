"""What the client sends is parsed strictly and bounded before it is read (issue 10, items 7 and 11)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client

from docs_app.models import Document
from docs_app.services.grants import collection_create

PASSWORD = "correct horse battery staple"


@pytest.fixture
def reader(db) -> tuple[Client, int, int]:
    user = User.objects.create_user(username="uma", password=PASSWORD)
    collection = collection_create(name="Digits", created_by=user)
    document = Document.objects.create(collection=collection, title="T", original_name="t.pdf", stored_name="t.pdf",
                                       sha256="ef" * 32, size_bytes=1, status="ready", page_count=2)
    client = Client()
    client.force_login(user)
    return client, collection.pk, document.pk


@pytest.mark.django_db
@pytest.mark.parametrize("digits", ["²", "٣", "𝟠", "1²", " 3"])
def test_unicode_digits_in_ids_and_page_numbers_are_ignored_not_a_server_error(reader, digits: str) -> None:
    client, collection_id, document_id = reader
    assert client.get(f"/documents/{document_id}/", {"page": digits, "chunk": digits}).status_code == 200
    status = client.get(f"/collections/{collection_id}/status.json", {"ids": f"{digits},{document_id}"})
    assert status.status_code == 200
    assert [row["id"] for row in status.json()["documents"]] == [document_id]
    asked = client.post("/ask/", {"question": "", "collections": [digits]})
    assert asked.status_code == 400  # the empty question, not the collection id, is what is wrong
    assert client.get(f"/collections/{collection_id}/", {"page": digits}).status_code == 200
