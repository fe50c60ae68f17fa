"""What the client sends is parsed strictly and bounded before it is read (issue 10, items 7 and 11)."""

from __future__ import annotations

import socket

import pytest
from django.contrib.auth.models import User
from django.test import Client

from docs_app.models import Document
from docs_app.services.actor import Actor
from docs_app.services.grants import collection_create

PASSWORD = "correct horse battery staple"


@pytest.fixture
def reader(db) -> tuple[Client, int, int]:
    user = User.objects.create_user(username="uma", password=PASSWORD)
    collection = collection_create(name="Digits", actor=Actor(user=user))
    document = Document.objects.create(collection=collection, title="T", original_name="t.pdf", stored_name="t.pdf",
                                       sha256="ef" * 32, size_bytes=1, status="ready", page_count=2)
    client = Client()
    client.force_login(user)
    return client, collection.pk, document.pk


@pytest.mark.django_db
@pytest.mark.parametrize("digits", ["²", "٣", "\U0001d7e0", "1²", " 3"])
def test_unicode_digits_in_ids_and_page_numbers_are_ignored_not_a_server_error(reader, digits: str) -> None:
    client, collection_id, document_id = reader
    assert client.get(f"/documents/{document_id}/", {"page": digits, "chunk": digits}).status_code == 200
    status = client.get(f"/collections/{collection_id}/status.json", {"ids": f"{digits},{document_id}"})
    assert status.status_code == 200
    assert [row["id"] for row in status.json()["documents"]] == [document_id]
    asked = client.post("/ask/", {"question": "", "collections": [digits]})
    assert asked.status_code == 400  # the empty question, not the collection id, is what is wrong
    assert client.get(f"/collections/{collection_id}/", {"page": digits}).status_code == 200


def _post_headers_only(live_server_url: str, path: str, length: int, cookie: str = "") -> bytes:
    """Send a POST's headers declaring `length` body bytes and a few bytes of body, then wait for the reply. A
    server that reads the body first would block here until the socket times out."""
    host, port = live_server_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall((f"POST {path} HTTP/1.1\r\nHost: localhost\r\n"
                      "Content-Type: multipart/form-data; boundary=xyz\r\n"
                      f"Content-Length: {length}\r\n" + (f"Cookie: {cookie}\r\n" if cookie else "")
                      + "\r\n").encode() + b"--xyz\r\n")
        try:
            return conn.recv(200)
        except TimeoutError:
            return b"(no reply: the server is reading the body)"


@pytest.mark.django_db(transaction=True)
def test_an_oversized_anonymous_post_is_refused_before_its_body_is_read(live_server, tmp_path) -> None:
    fake_csrf = "csrftoken=" + "a" * 32
    reply = _post_headers_only(live_server.url, "/login/", 400 * 1024 * 1024, cookie=fake_csrf)
    assert reply.split(b"\r\n")[0].split(b" ")[1:2] == [b"413"], reply
    # The upload route allows large bodies, but not to someone who is not logged in.
    collection = collection_create(name="Big", actor=Actor(user=User.objects.create_user("big", password=PASSWORD)))
    reply = _post_headers_only(live_server.url, f"/collections/{collection.pk}/upload/", 400 * 1024 * 1024,
                               cookie=fake_csrf)
    assert reply.split(b"\r\n")[0].split(b" ")[1:2] == [b"413"], reply


@pytest.mark.django_db
def test_bodies_within_the_limit_still_work(settings) -> None:
    client = Client()
    assert client.post("/login/", {"username": "nobody", "password": "x" * 20}).status_code == 200
    settings.REQUEST_MAX_BODY_BYTES = 10
    assert client.post("/login/", {"username": "nobody", "password": "x" * 20}).status_code == 413
