"""Files for several hosts (issue 15): an ingest worker on "another host" — its own data directory, its own host
name — reaches the stored originals only through the file store they share (DOCS_FILES_DIR, a shared mount in
production), and ingests what the web side stored there."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings

from docs_app.devservices import Services
from docs_app.models import Collection, Document, DocumentStatus
from docs_app.services.sandboxing import pdf_sandbox
from tests.conftest import LOG_DIR, wait_for_worker, worker_env
from tests.data import SPONSORSHIP, cuad
from tests.harness import upload, wait_ready

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


def test_an_ingest_worker_with_its_own_data_dir_reads_originals_from_the_shared_file_store(
        services: None, devservices: Services, tmp_path: Path) -> None:
    from workers.celery import app

    other_data = tmp_path / "other-host-data"
    env = {**worker_env(), "DOCS_DATA_DIR": str(other_data), "DOCS_FILES_DIR": str(settings.MEDIA_ROOT),
           "DOCS_HOST_ID": "files-host"}
    suite = [name for reply in app.control.ping(timeout=1.0) for name in reply if name.startswith("suite@")]
    other = devservices.worker("files-host", queues="ingest", concurrency=1, env=env)
    app.control.cancel_consumer("ingest", destination=suite, reply=True)  # the other host takes the work
    try:
        wait_for_worker("files-host")
        collection = Collection.objects.create(name="Shared store")
        document = wait_ready(upload(collection, cuad(SPONSORSHIP)))
    finally:
        app.control.add_consumer("ingest", destination=suite, reply=True)
        devservices.stop(other)
    assert document.status == DocumentStatus.READY and document.chunks.exists()
    assert Document.objects.get(pk=document.pk).attempts == 1
    log = (LOG_DIR / "worker-files-host.log").read_text()
    assert "document_ingest_task" in log and "succeeded" in log  # that host did the work
    # The other host kept nothing of the original in its own data directory.
    assert not (other_data / "files").exists() or not any((other_data / "files").iterdir())


def test_the_pdf_sandbox_hides_a_file_store_outside_the_data_dir(settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    settings.MEDIA_ROOT = tmp_path / "shared-mount" / "files"
    assert str(settings.MEDIA_ROOT) in pdf_sandbox().hidden
