"""Bulk upload: many files in one request, and .zip archives of PDFs, each file with its own outcome.

One bad file never blocks the rest: every file (and every archive member) ends as queued, duplicate or
rejected with a reason. Archives are read in place, never extracted to disk: a member's name is only a label
shown to the person, so a name like `../../etc/passwd` cannot reach the file system; such names are still
rejected, because an archive that carries them was not made by a person zipping a folder of contracts.
"""

from __future__ import annotations

import dataclasses
import zipfile
import zlib
from collections.abc import Iterable
from pathlib import PurePosixPath
from typing import IO, TYPE_CHECKING, cast

from django.conf import settings

from docs_app.models import Collection, UploadBatch, UploadItem
from docs_app.pipeline.pdf_extract import ExtractionError
from docs_app.services.actor import Actor
from docs_app.services.documents import UploadOutcome, document_upload, upload_rejected

if TYPE_CHECKING:
    from django.core.files.uploadedfile import UploadedFile

# The errors zipfile raises while inflating a damaged member.
_DAMAGED_MEMBER = (zipfile.BadZipFile, EOFError, zlib.error, NotImplementedError)


# What a file the browser would not send is recorded with (it never reached the server).
NOT_SENT_REASON = "not a PDF or .zip archive (not sent)"


def upload_batch_create(*, collection: Collection, actor: Actor, not_sent: Iterable[str] = ()) -> UploadBatch:
    """A new upload report; the files the browser refused to send (by extension) are its first lines. The
    caller checked the role."""
    batch = UploadBatch.objects.create(collection=collection, created_by=actor.account)
    UploadItem.objects.bulk_create([UploadItem(batch=batch, name=name[:500], status="rejected",
                                               reason=NOT_SENT_REASON) for name in not_sent])
    return batch


def upload_batch_record(*, batch: UploadBatch, outcomes: Iterable[UploadOutcome]) -> None:
    UploadItem.objects.bulk_create([
        UploadItem(batch=batch, name=o.name[:500], archive=o.archive[:500], status=o.status, reason=o.reason[:500],
                   document_id=o.document_id) for o in outcomes])


def uploads_accept(
    *,
    collection: Collection,
    files: Iterable[UploadedFile[bytes]],
    actor: Actor,
    batch: UploadBatch | None = None,
) -> tuple[UploadBatch, list[UploadOutcome]]:
    """Store every file of one upload request; .zip files are expanded. Each outcome is added to `batch` (the
    browser sends a batch's files one request each), or to a new batch. The caller checked the role."""
    batch = batch if batch is not None else upload_batch_create(collection=collection, actor=actor)
    outcomes = _accept(collection=collection, files=files, actor=actor)
    upload_batch_record(batch=batch, outcomes=outcomes)
    return batch, outcomes


def _accept(*, collection: Collection, files: Iterable[UploadedFile[bytes]], actor: Actor) -> list[UploadOutcome]:
    outcomes: list[UploadOutcome] = []
    limit = settings.UPLOAD_MAX_FILES
    for index, upload in enumerate(files):
        name = upload.name or "upload"
        if index >= limit:
            reason = f"over the limit of {limit} files per upload; send the rest separately or as a .zip"
            outcomes.append(upload_rejected(name=name, reason=reason, collection=collection, actor=actor))
        elif name.lower().endswith(".zip"):
            outcomes.extend(zip_upload(collection=collection, name=name, source=upload, actor=actor))
        else:
            outcomes.append(document_upload(collection=collection, name=name, source=upload, actor=actor))
    return outcomes


def zip_upload(
    *,
    collection: Collection,
    name: str,
    source: IO[bytes],
    actor: Actor,
) -> list[UploadOutcome]:
    """Every PDF member of the archive as its own upload; other members are reported, not stored.

    The member count and the declared uncompressed total are checked before anything is read. The declared
    sizes cannot lie their way past the cap: zipfile stops inflating a member at its declared size (and then
    fails its CRC check), and each member is also held to the per-file size cap by document_upload."""
    archive = PurePosixPath(name.replace("\\", "/")).name
    try:
        zf = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, OSError):
        return [upload_rejected(name=archive, reason="not a valid .zip archive", collection=collection,
                                actor=actor)]
    with zf:
        members = [info for info in zf.infolist()
                   if not info.is_dir() and not _is_resource_fork(info.filename)]
        if len(members) > settings.ZIP_MAX_MEMBERS:
            reason = f"archive has too many files ({len(members)} > limit {settings.ZIP_MAX_MEMBERS})"
            return [upload_rejected(name=archive, reason=reason, collection=collection, actor=actor)]
        declared_mb = sum(info.file_size for info in members) / (1024 * 1024)
        if declared_mb > settings.ZIP_MAX_UNCOMPRESSED_MB:
            reason = f"archive expands to {declared_mb:.0f} MB (limit {settings.ZIP_MAX_UNCOMPRESSED_MB} MB)"
            return [upload_rejected(name=archive, reason=reason, collection=collection, actor=actor)]
        return [_member_upload(zf, info, archive=archive, collection=collection, actor=actor)
                for info in members]


def _member_upload(zf: zipfile.ZipFile, info: zipfile.ZipInfo, *, archive: str, collection: Collection,
                   actor: Actor) -> UploadOutcome:
    # A member is labelled by its own name; where it sat in the archive is said beside it.
    path = PurePosixPath(info.filename.replace("\\", "/"))
    label = path.name or info.filename
    folder = str(path.parent) if str(path.parent) not in {".", "/"} else ""
    where = f"{archive}/{folder}" if folder else archive
    reason = _member_problem(info)
    if reason:
        return dataclasses.replace(upload_rejected(name=label, reason=reason, collection=collection, actor=actor),
                                   archive=where)
    try:
        with zf.open(info) as member:
            outcome = document_upload(collection=collection, name=info.filename,
                                      source=cast(IO[bytes], _MemberReader(member)), actor=actor)
    except _DAMAGED_MEMBER:
        return dataclasses.replace(upload_rejected(name=label, reason="damaged inside the archive",
                                                   collection=collection, actor=actor), archive=where)
    return dataclasses.replace(outcome, name=label, archive=where)


def _member_problem(info: zipfile.ZipInfo) -> str:
    path = info.filename.replace("\\", "/")
    parts = PurePosixPath(path).parts
    if path.startswith("/") or ".." in parts or (len(path) > 1 and path[1] == ":"):
        return "unsafe path in the archive (absolute or leading outside it)"
    if info.flag_bits & 0x1:
        return "encrypted inside the archive"
    if not path.lower().endswith(".pdf"):
        suffix = PurePosixPath(path).suffix
        return f"not a PDF ({suffix} file)" if suffix else "not a PDF"
    return ""


def _is_resource_fork(filename: str) -> bool:
    # macOS adds an AppleDouble twin (__MACOSX/..., ._name) of every zipped file: noise, not a document.
    path = PurePosixPath(filename.replace("\\", "/"))
    return path.parts[:1] == ("__MACOSX",) or path.name.startswith("._")


class _MemberReader:
    """Turns inflate errors into an ExtractionError, which document_upload reports as a rejection."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream

    def read(self, size: int = -1) -> bytes:
        try:
            return self._stream.read(size)
        except _DAMAGED_MEMBER as exc:
            raise ExtractionError("damaged inside the archive") from exc
