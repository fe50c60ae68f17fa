"""Files for several hosts (issue 15): an ingest worker on "another host" — its own data directory, its own host
name — reaches the stored originals only through the store they share: a shared mount (DOCS_FILES_DIR) or an
S3-compatible object store (DOCS_STORAGE=s3; here moto's server on a loopback port, in place of MinIO)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import pytest
from django.conf import settings
from django.test import override_settings

from docs_app import storage
from docs_app.devservices import Services, free_port
from docs_app.models import Collection, Document, DocumentStatus, Role
from docs_app.services.actor import SYSTEM
from docs_app.services.documents import document_delete
from docs_app.services.sandboxing import pdf_sandbox
from docs_app.settings import files_storage
from docs_app.storage import (
    StoreError,
    spool_sweep,
    stored_file_delete,
    stored_file_local,
    stored_file_open,
    stored_file_save,
    stored_files_empty,
)
from tests.conftest import LOG_DIR, wait_for_worker, worker_env
from tests.data import SPONSORSHIP, cuad
from tests.harness import logged_in, upload, wait_ready

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

BUCKET = "docs-originals"
# moto accepts any key; these only show that keys travel by environment, as an operator's would.
S3_KEYS = {"DOCS_S3_ACCESS_KEY_ID": "suite-access-key", "DOCS_S3_SECRET_ACCESS_KEY": "suite-secret-key"}


def _s3_env(endpoint: str) -> dict[str, str]:
    return {"DOCS_STORAGE": "s3", "DOCS_S3_ENDPOINT_URL": endpoint, "DOCS_S3_BUCKET": BUCKET, **S3_KEYS}


@pytest.fixture(scope="module")
def s3_endpoint(devservices: Services) -> Iterator[str]:
    port = free_port()
    proc = devservices.s3(port=port)
    endpoint = f"http://127.0.0.1:{port}"
    _bucket_client(endpoint).create_bucket(Bucket=BUCKET)
    yield endpoint
    devservices.stop(proc)


def _bucket_client(endpoint: str) -> Any:
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id=S3_KEYS["DOCS_S3_ACCESS_KEY_ID"],
                        aws_secret_access_key=S3_KEYS["DOCS_S3_SECRET_ACCESS_KEY"])


def _bucket_keys(endpoint: str) -> list[str]:
    listing = _bucket_client(endpoint).list_objects_v2(Bucket=BUCKET)
    return [item["Key"] for item in listing.get("Contents", [])]


@pytest.fixture
def s3_store(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[str]:
    """This process (the web side) stores originals in the bucket, with a spool directory of its own."""
    for name, value in _s3_env(s3_endpoint).items():
        monkeypatch.setenv(name, value)
    with override_settings(FILES_STORAGE="s3", SPOOL_DIR=tmp_path / "web-spool",
                           STORAGES={**settings.STORAGES, "default": files_storage("s3")}):
        yield s3_endpoint
    for key in _bucket_keys(s3_endpoint):
        _bucket_client(s3_endpoint).delete_object(Bucket=BUCKET, Key=key)


@contextmanager
def _other_host(devservices: Services, name: str, env: dict[str, str]) -> Iterator[None]:
    """An ingest worker as another host: the suite's own worker stops taking ingest work meanwhile."""
    from workers.celery import app

    suite = [key for reply in app.control.ping(timeout=1.0) for key in reply if key.startswith("suite@")]
    other = devservices.worker(name, queues="ingest", concurrency=1, env=env)
    app.control.cancel_consumer("ingest", destination=suite, reply=True)
    try:
        wait_for_worker(name)
        yield
    finally:
        app.control.add_consumer("ingest", destination=suite, reply=True)
        devservices.stop(other)


def test_an_ingest_worker_with_its_own_data_dir_reads_originals_from_the_shared_file_store(
        services: None, devservices: Services, tmp_path: Path) -> None:
    other_data = tmp_path / "other-host-data"
    env = {**worker_env(), "DOCS_DATA_DIR": str(other_data), "DOCS_FILES_DIR": str(settings.MEDIA_ROOT),
           "DOCS_HOST_ID": "files-host"}
    with _other_host(devservices, "files-host", env):
        collection = Collection.objects.create(name="Shared store")
        started = time.monotonic()
        document = wait_ready(upload(collection, cuad(SPONSORSHIP)))
        print(f"\nupload to READY through the shared directory: {time.monotonic() - started:.1f} s")
    assert document.status == DocumentStatus.READY and document.chunks.exists()
    assert Document.objects.get(pk=document.pk).attempts == 1
    log = (LOG_DIR / "worker-files-host.log").read_text()
    assert "document_ingest_task" in log and "succeeded" in log  # that host did the work
    # The other host kept nothing of the original in its own data directory.
    assert not (other_data / "files").exists() or not any((other_data / "files").iterdir())


def test_an_ingest_worker_reaches_originals_only_through_an_s3_store(
        services: None, devservices: Services, s3_store: str, tmp_path: Path, user_factory: Any,
        collection_with_grant: Any) -> None:
    other_data = tmp_path / "s3-host-data"
    # The worker's file directory is its own and empty: the web side's MEDIA_ROOT is not named anywhere.
    env = {**worker_env(), **_s3_env(s3_store), "DOCS_DATA_DIR": str(other_data),
           "DOCS_FILES_DIR": str(other_data / "files"), "DOCS_HOST_ID": "s3-host"}
    manager = user_factory("s3-manager")
    collection = collection_with_grant("Object store", manager, Role.MANAGER)
    source = cuad(SPONSORSHIP)
    with _other_host(devservices, "s3-host", env):
        started = time.monotonic()
        document_id = upload(collection, source)
        # Kept in the bucket under a generated name; the user's file name never reaches the store.
        document = Document.objects.get(pk=document_id)
        assert _bucket_keys(s3_store) == [document.stored_name]
        assert source.stem.split("_")[0] not in document.stored_name
        document = wait_ready(document_id)
        print(f"\nupload to READY through the S3 store: {time.monotonic() - started:.1f} s")
    assert document.chunks.exists() and document.attempts == 1
    log = (LOG_DIR / "worker-s3-host.log").read_text()
    assert "document_ingest_task" in log and "succeeded" in log
    assert not any(Path(settings.MEDIA_ROOT).glob(f"*{document.stored_name}*"))  # nothing went by local disk
    # The worker's private copy for the sandboxed children is gone, and nothing landed in its file directory.
    assert not list((other_data / "spool").iterdir())
    assert not (other_data / "files").exists() or not any((other_data / "files").iterdir())

    client = logged_in(manager)
    page = client.get(f"/documents/{document.pk}/pages/1.png")
    assert page.status_code == 200 and page["Content-Type"] == "image/png"
    assert b"".join(page.streaming_content).startswith(b"\x89PNG")  # type: ignore[attr-defined]
    assert not list(Path(settings.SPOOL_DIR).iterdir())  # the web side's copy for the renderer is gone too
    pdf = client.get(f"/documents/{document.pk}/download/")
    assert pdf.status_code == 200
    assert b"".join(pdf.streaming_content) == source.read_bytes()  # type: ignore[attr-defined]
    assert int(pdf["Content-Length"]) == source.stat().st_size

    # A store that cannot be reached: the erasure is refused, not half done.
    dead = {**files_storage("s3"), "OPTIONS": {**files_storage("s3")["OPTIONS"],  # type: ignore[dict-item]
                                                 "endpoint_url": f"http://127.0.0.1:{free_port()}"}}
    with override_settings(STORAGES={**settings.STORAGES, "default": dead}):
        refused = client.post(f"/documents/{document.pk}/delete/", follow=True)
    assert "was not deleted" in refused.content.decode()
    assert Document.objects.filter(pk=document.pk).exists() and document.chunks.exists()
    assert _bucket_keys(s3_store) == [document.stored_name]

    assert client.post(f"/documents/{document.pk}/delete/").status_code == 302
    assert not Document.objects.filter(pk=document.pk).exists()
    assert _bucket_keys(s3_store) == []


def test_a_private_copy_of_an_s3_original_lives_only_as_long_as_the_block(s3_store: str) -> None:
    name = "0123456789abcdef0123456789abcdef.pdf"
    assert stored_files_empty()  # what restore asks of the store before it fills it
    with cuad(SPONSORSHIP).open("rb") as original:
        stored_file_save(name, original)
    assert not stored_files_empty()
    with pytest.raises(FileExistsError), cuad(SPONSORSHIP).open("rb") as original:
        stored_file_save(name, original)  # an original is never replaced
    opened = stored_file_open(name)  # what backup copies from
    assert opened is not None
    with opened:
        assert opened.read() == cuad(SPONSORSHIP).read_bytes()
    spool = Path(settings.SPOOL_DIR)
    with stored_file_local(name) as path:
        assert path is not None and path.parent == spool
        assert path.read_bytes() == cuad(SPONSORSHIP).read_bytes()
        assert path.stat().st_mode & 0o777 == 0o600
    assert not path.exists()
    with pytest.raises(RuntimeError), stored_file_local(name) as path:
        raise RuntimeError("the child failed")
    assert path is not None and not path.exists()
    with stored_file_local("no-such-original.pdf") as missing:
        assert missing is None
    # A copy whose process is gone (a SIGKILL runs no `finally`) is swept; a live process's copy is not.
    dead_pid = _dead_pid()
    left = spool / f".spool-{dead_pid}-original-x.part"
    live = spool / f".spool-{os.getpid()}-original-y.part"
    left.write_bytes(b"%PDF confidential")
    live.write_bytes(b"%PDF in use")
    assert spool_sweep() == 1
    assert not left.exists() and live.exists()
    stored_file_delete(name)
    assert _bucket_keys(s3_store) == [] and stored_files_empty()


def test_erasure_that_the_store_refuses_changes_nothing(services: None, monkeypatch: pytest.MonkeyPatch) -> None:
    collection = Collection.objects.create(name="Refused")
    document = Document.objects.get(pk=upload(collection, cuad(SPONSORSHIP)))
    stored = Path(settings.MEDIA_ROOT) / document.stored_name

    def refuse(name: str) -> None:
        raise PermissionError(13, "Permission denied", name)

    monkeypatch.setattr(storage.default_storage, "delete", refuse)
    with pytest.raises(StoreError, match="could not delete"):
        document_delete(document=document, actor=SYSTEM)
    assert Document.objects.filter(pk=document.pk).exists() and stored.exists()
    monkeypatch.undo()
    wait_ready(document.pk)
    document_delete(document=document, actor=SYSTEM)
    assert not stored.exists() and not Document.objects.filter(pk=document.pk).exists()


def _dead_pid() -> int:
    pid = 4_000_000
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        except PermissionError:
            pass
        pid -= 1


def test_the_pdf_sandbox_hides_a_file_store_outside_the_data_dir(settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    settings.MEDIA_ROOT = tmp_path / "shared-mount" / "files"
    assert str(settings.MEDIA_ROOT) in pdf_sandbox().hidden
