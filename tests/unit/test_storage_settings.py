"""Where the originals live is chosen by the environment (DOCS_STORAGE), and the keys of an object store come from
the environment only (issue 15)."""

from __future__ import annotations

import os

import pytest
from django.core.exceptions import ImproperlyConfigured

from docs_app.settings import files_storage


def test_local_disk_is_a_directory_store() -> None:
    assert files_storage("local") == {"BACKEND": "django.core.files.storage.FileSystemStorage"}


def test_an_s3_store_takes_endpoint_bucket_and_keys_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCS_S3_ENDPOINT_URL", "https://minio.office.example:9000")
    monkeypatch.setenv("DOCS_S3_BUCKET", "originals")
    monkeypatch.setenv("DOCS_S3_ACCESS_KEY_ID", "key-from-env")
    monkeypatch.setenv("DOCS_S3_SECRET_ACCESS_KEY", "secret-from-env")
    monkeypatch.delenv("AWS_EC2_METADATA_DISABLED", raising=False)
    storage = files_storage("s3")
    options = storage["OPTIONS"]
    assert storage["BACKEND"] == "storages.backends.s3.S3Storage"
    assert isinstance(options, dict)
    assert (options["endpoint_url"], options["bucket_name"]) == ("https://minio.office.example:9000", "originals")
    assert (options["access_key"], options["secret_key"]) == ("key-from-env", "secret-from-env")
    assert options["file_overwrite"] is False  # an original is never replaced
    # boto3 must not go looking for credentials at the cloud's metadata address.
    assert os.environ["AWS_EC2_METADATA_DISABLED"] == "true"


def test_without_keys_boto3_s_own_chain_is_used_not_an_empty_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCS_S3_BUCKET", "originals")
    monkeypatch.delenv("DOCS_S3_ACCESS_KEY_ID", raising=False)
    monkeypatch.delenv("DOCS_S3_SECRET_ACCESS_KEY", raising=False)
    options = files_storage("s3")["OPTIONS"]
    assert isinstance(options, dict)
    assert options["access_key"] is None and options["secret_key"] is None


def test_an_s3_store_without_a_bucket_or_an_unknown_kind_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DOCS_S3_BUCKET", raising=False)
    with pytest.raises(ImproperlyConfigured, match="DOCS_S3_BUCKET"):
        files_storage("s3")
    with pytest.raises(ImproperlyConfigured, match="'local' or 's3'"):
        files_storage("nfs")
