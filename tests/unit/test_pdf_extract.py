"""pdf_validate and pdf_extract_pages on real contracts, on the hostile corpus and on fake children.

No Django: these run with or without pytest-django.
"""

from __future__ import annotations

import csv
import os
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from docs_app.pipeline.pdf_extract import ExtractedPage, ExtractionError, pdf_extract_pages, pdf_validate
from tests.data import REPO, cuad_first, hostile


def _manifest() -> list[dict[str, str]]:
    with hostile("MANIFEST.tsv").open(encoding="utf-8") as manifest:
        return list(csv.DictReader(manifest, delimiter="\t"))


def _encrypted() -> list[str]:
    """The files the manifest calls encrypted; read at collection, so without the data there are none (and
    the tests below that read the corpus fail, saying where it was looked for)."""
    try:
        return sorted(row["file"] for row in _manifest() if row["probe_outcome"] == "encrypted")
    except pytest.fail.Exception:
        return []


def extract(
    path: Path,
    *,
    max_pages: int = 5000,
    timeout_s: float = 60,
    memory_limit_mb: int = 1024,
    on_page: Callable[[int, int], None] | None = None,
) -> list[ExtractedPage]:
    return pdf_extract_pages(
        path, max_pages=max_pages, timeout_s=timeout_s, memory_limit_mb=memory_limit_mb, on_page=on_page
    )


def reason_of(path: Path, **overrides: Any) -> str:
    with pytest.raises(ExtractionError) as caught:
        pdf_validate(path, max_bytes=100 * 1024 * 1024)
        extract(path, **overrides)
    assert caught.value.reason == str(caught.value)
    return caught.value.reason


@pytest.mark.parametrize("index", range(3))
def test_real_contract_pages_arrive_in_order_with_text_and_progress(index: int) -> None:
    path = cuad_first(3)[index]
    calls: list[tuple[int, int]] = []

    pdf_validate(path, max_bytes=100 * 1024 * 1024)
    pages = extract(path, on_page=lambda done, total: calls.append((done, total)))

    total = len(pages)
    assert total > 0
    assert [page.number for page in pages] == list(range(1, total + 1))
    assert calls == [(done, total) for done in range(total + 1)]
    assert sum(bool(page.text.strip()) for page in pages) >= total - 1
    assert "agreement" in " ".join(page.text for page in pages).lower()


def test_page_count_matches_the_contract() -> None:
    # The page tree of the first contract in sorted order says /Count 9 (nine /Type /Page objects).
    first = cuad_first(1)[0]
    assert len(extract(first)) == 9


@pytest.mark.parametrize("name", _encrypted())
def test_pdf_that_needs_a_password_is_rejected_as_password_protected(name: str) -> None:
    assert reason_of(hostile(name)) == "password protected"


@pytest.mark.parametrize("name", ["qpdf__enc-XI-R6,V5,O=master.pdf", "qpdf__enc-R2,V1.pdf"])
def test_encrypted_pdf_with_empty_user_password_is_extracted(name: str) -> None:
    pages = extract(hostile(name))
    assert any(page.text.strip() for page in pages)


def test_png_renamed_to_pdf_is_not_a_pdf() -> None:
    assert reason_of(hostile("gen__png_renamed.pdf")) == "not a PDF (looks like PNG image)"


def test_empty_file_is_rejected_before_parsing() -> None:
    assert reason_of(hostile("gen__empty.pdf")) == "empty file"


def test_missing_file_is_rejected() -> None:
    assert reason_of(hostile() / "no-such-file.pdf").startswith("file cannot be read")


def test_file_over_the_size_limit_is_rejected_with_both_sizes() -> None:
    with pytest.raises(ExtractionError) as caught:
        pdf_validate(hostile("gen__3000_pages.pdf"), max_bytes=512 * 1024)
    assert caught.value.reason == "file too large (1 MB > limit 0.5 MB)"


@pytest.mark.parametrize(
    ("head", "looks_like"),
    [
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", "JPEG image"),
        (b"GIF89a\x01\x00", "GIF image"),
        (b"PK\x03\x04\x14\x00\x06\x00", "ZIP archive or Office document"),
        (b"Dear client,\nplease find attached\n", "plain text"),
        (b"<!DOCTYPE html><html>", "HTML page"),
        (b"\x00\x01\x02\x03binary", "unknown format"),
    ],
)
def test_other_formats_are_named_in_the_rejection(tmp_path: Path, head: bytes, looks_like: str) -> None:
    path = tmp_path / "upload.pdf"
    path.write_bytes(head + b"x" * 2000 + b"%PDF-1.7")
    with pytest.raises(ExtractionError) as caught:
        pdf_validate(path, max_bytes=1024 * 1024)
    assert caught.value.reason == f"not a PDF (looks like {looks_like})"


def test_header_after_leading_junk_within_1024_bytes_passes_validation(tmp_path: Path) -> None:
    path = tmp_path / "mail.pdf"
    path.write_bytes(b"Content-Type: application/pdf\r\n\r\n" + (hostile("qpdf__enc-R2,V1.pdf")).read_bytes())
    pdf_validate(path, max_bytes=1024 * 1024)


def test_too_many_pages_fails_fast_without_progress() -> None:
    calls: list[tuple[int, int]] = []
    reason = reason_of(hostile("gen__3000_pages.pdf"), max_pages=2000, on_page=lambda *call: calls.append(call))
    assert reason == "too many pages (3000 > limit 2000)"
    assert calls == []


def test_valid_pdf_without_pages_is_rejected() -> None:
    assert reason_of(hostile("gen__zero_pages.pdf")) == "PDF has no pages"


def test_truncated_pdf_without_recoverable_pages_is_damaged() -> None:
    assert reason_of(hostile("gen__truncated_30pct.pdf")) == "damaged PDF: no pages could be recovered"


def test_pdf_mupdf_cannot_open_is_damaged_with_mupdfs_reason() -> None:
    assert reason_of(hostile("pdfjs__poppler-85140-0.pdf")) == "damaged PDF: cannot parse object (4 0 R)"


def test_slow_extraction_is_killed_at_the_timeout() -> None:
    started = time.monotonic()
    assert reason_of(hostile("gen__3000_pages.pdf"), timeout_s=0.2) == "extraction timed out after 0.2 s"
    assert time.monotonic() - started < 2


def test_memory_limit_below_need_is_reported_as_out_of_memory() -> None:
    assert reason_of(cuad_first(1)[0], memory_limit_mb=50) == (
        "extraction ran out of memory (limit 50 MB)"
    )


def test_exception_from_on_page_propagates(tmp_path: Path) -> None:
    class Cancelled(Exception):
        pass

    def cancel(done: int, total: int) -> None:
        if done == 10:
            raise Cancelled

    with pytest.raises(Cancelled):
        extract(hostile("gen__3000_pages.pdf"), on_page=cancel)


def fake_python(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, script: str) -> None:
    """Make pdf_extract_pages start `script` (sh) instead of the real child."""
    path = tmp_path / "fake-python"
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setattr(sys, "executable", str(path))


def test_child_killed_by_a_signal_is_reported_as_crashed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_python(tmp_path, monkeypatch, "echo '{\"pages\": 3}'\nkill -SEGV $$\n")
    assert reason_of(hostile("qpdf__enc-R2,V1.pdf")) == "extraction crashed (signal SIGSEGV)"


def test_hanging_child_and_what_it_started_are_killed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pid_file = tmp_path / "grandchild.pid"
    fake_python(tmp_path, monkeypatch, f"sleep 600 &\necho $! > {pid_file}\nwait\n")

    assert reason_of(hostile("qpdf__enc-R2,V1.pdf"), timeout_s=0.5) == "extraction timed out after 0.5 s"

    grandchild = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while _alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(grandchild)


def _alive(pid: int) -> bool:
    status = Path(f"/proc/{pid}/stat")
    # A killed child of an already reaped shell is re-parented and reaped by init; until then it is a zombie.
    return status.exists() and status.read_text().split(") ")[1][0] != "Z"


def test_garbage_on_stdout_is_an_extraction_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_python(tmp_path, monkeypatch, "echo 'Warning: something odd'\n")
    assert reason_of(hostile("qpdf__enc-R2,V1.pdf")) == ("extraction failed (unexpected output from the extractor)")


def test_failure_reason_keeps_only_the_tail_of_stderr(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_python(tmp_path, monkeypatch, "yes 'noise noise' | head -c 200000 >&2\necho 'the real cause' >&2\nexit 3\n")
    reason = reason_of(hostile("qpdf__enc-R2,V1.pdf"))
    assert reason.startswith("extraction failed (exit code 3): ...")
    assert reason.endswith("the real cause")
    assert len(reason) < 400


def test_text_beyond_the_memory_limit_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_python(tmp_path, monkeypatch, "echo '{\"pages\": 1}'\nhead -c 3000000 /dev/zero | tr '\\0' x\n")
    reason = reason_of(hostile("qpdf__enc-R2,V1.pdf"), memory_limit_mb=2)
    assert reason == "too much text (more than 2 MB)"


def test_child_imports_neither_django_nor_heavy_optional_modules() -> None:
    # -X importtime lists every module the child imports, on stderr.
    env = dict(os.environ, PYTHONPATH=str(REPO))
    command = [sys.executable, "-X", "importtime", "-m", "docs_app.pipeline.pdf_extract_child"]
    done = subprocess.run(
        [*command, str(hostile("qpdf__enc-R2,V1.pdf")), "10", "1024"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=60,
    )
    imported = {line.rsplit("|", 1)[-1].strip().split(".")[0] for line in done.stderr.splitlines()}
    assert "pymupdf" in imported
    assert imported.isdisjoint({"django", "torch", "numpy", "onnxruntime"})
    assert done.stdout == '{"pages": 30}\n'  # over the 10-page limit: the count only


def test_every_hostile_file_yields_pages_or_a_reason() -> None:
    def outcome(path: Path) -> list[ExtractedPage] | ExtractionError:
        try:
            pdf_validate(path, max_bytes=100 * 1024 * 1024)
            return extract(path)
        except ExtractionError as exc:
            return exc

    paths = sorted(hostile().glob("*.pdf"))
    assert len(paths) == len(_manifest())
    # Two at a time: the parent only waits on pipes while each child uses one core.
    with ThreadPoolExecutor(max_workers=2) as pool:
        outcomes = dict(zip(paths, pool.map(outcome, paths), strict=True))

    for path, result in outcomes.items():
        if isinstance(result, ExtractionError):
            assert result.reason.strip(), path.name
        else:
            assert [page.number for page in result] == list(range(1, len(result) + 1)), path.name
