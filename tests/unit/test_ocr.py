"""Which pages need OCR, and reading them with the real Tesseract in sandboxed extraction children.

No Django. The scans are made here from a real contract (docs_app.devscans: 150 dpi greyscale, skew, noise,
JPEG), the way an office scanner would have made them.
"""

from __future__ import annotations

import re
from pathlib import Path

import pymupdf
import pytest

from docs_app.devscans import scan_pdf
from docs_app.pipeline.ocr import passage_boxes, text_layer_usable
from docs_app.pipeline.pdf_extract import pdf_extract_pages
from docs_app.pipeline.pdf_ocr import OcrOptions, OcrUnavailable, pdf_ocr_pages
from tests.data import SPONSORSHIP, cuad

TESSDATA = next((str(p.parent) for p in sorted(Path("/usr/share/tesseract-ocr").glob("*/tessdata/eng.traineddata"))),
                "/usr/share/tesseract-ocr/5/tessdata")
_WORD = re.compile(r"[a-z0-9]+")


def options(**overrides: object) -> OcrOptions:
    fields: dict[str, object] = {"tessdata": TESSDATA, "languages": "eng", "page_timeout_s": 60.0,
                                 "timeout_s": 300.0, "processes": 2, "memory_limit_mb": 2048}
    fields.update(overrides)
    return OcrOptions(**fields)  # type: ignore[arg-type]


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


@pytest.fixture(scope="module")
def scanned_contract(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("scans") / "sponsorship-scan.pdf"
    scan_pdf(cuad(SPONSORSHIP), target, seed=1)
    return target


@pytest.mark.parametrize("text", [
    "This Agreement is entered into as of May 18, 2010.",
    "浅谈校长的魅力 山西省闻喜县诚镇初中",  # CJK
    "اﻧﻮاع اﳋﻄﻮط اﻟﻌﺮﺑﻴﺔ",  # Arabic presentation forms
    "Page 1 of 3000.\n",
])
def test_a_real_text_layer_is_usable(text: str) -> None:
    assert text_layer_usable(text)


@pytest.mark.parametrize("text", [
    "",
    " \n\t ",
    "3HQ\u010c\u00e5Qt\x03SURVW\u011cHGN\\\x03QD\x03~\u00feWHFK\x03",  # glyph ids posing as text (pdfminer issue 791)
    "\ufffd\ufffd\ufffd \ufffd\ufffd",
    "\ue000\ue001\ue002\ue003 \ue004",  # private use
])
def test_an_empty_or_broken_font_map_text_layer_is_not_usable(text: str) -> None:
    assert not text_layer_usable(text)


def test_every_page_of_a_scan_is_flagged_for_ocr_and_no_page_with_text_is(scanned_contract: Path) -> None:
    assert all(page.needs_ocr for page in pdf_extract_pages(scanned_contract, max_pages=100, timeout_s=60,
                                                            memory_limit_mb=1024))
    assert not any(page.needs_ocr for page in pdf_extract_pages(cuad(SPONSORSHIP), max_pages=100, timeout_s=60,
                                                                memory_limit_mb=1024))


def test_mixed_pdf_flags_only_the_scanned_page_and_a_scan_under_a_bates_stamp(tmp_path: Path) -> None:
    scan_pdf(cuad(SPONSORSHIP), tmp_path / "scan.pdf")
    mixed = pymupdf.open(cuad(SPONSORSHIP))
    with pymupdf.open(tmp_path / "scan.pdf") as scan:
        mixed.insert_pdf(scan, from_page=1, to_page=2)
    # A scanned page stamped with a Bates number as real text: a few words over a full-page image.
    mixed[-1].insert_text((400, 770), "SMITH-000123", fontsize=9)
    mixed.save(tmp_path / "mixed.pdf")
    pages = pdf_extract_pages(tmp_path / "mixed.pdf", max_pages=100, timeout_s=60, memory_limit_mb=1024)
    assert [page.needs_ocr for page in pages] == [False, False, False, True, True]
    assert "SMITH-000123" in pages[-1].text


def test_ocr_reads_a_noisy_skewed_150_dpi_scan(scanned_contract: Path) -> None:
    done: list[int] = []
    results = pdf_ocr_pages(scanned_contract, [1, 2, 3], options=options(), on_page=done.append)
    assert done == [1, 2, 3]
    assert sorted(results) == [1, 2, 3]
    with pymupdf.open(cuad(SPONSORSHIP)) as original:
        for number, result in results.items():
            truth = words(original[number - 1].get_text())
            found = set(words(result.text))
            assert sum(word in found for word in truth) >= 0.9 * len(truth), number
            assert result.confidence is not None and result.confidence >= 70
            assert not result.note
            # Every word box spans its word's characters in the text.
            assert all(result.text[int(s):int(e)].strip() for s, e, *_ in result.words)


def test_ocr_word_boxes_lie_where_the_words_are_on_the_page(tmp_path: Path) -> None:
    scan_pdf(cuad(SPONSORSHIP), tmp_path / "straight.pdf", max_skew_deg=0)
    result = pdf_ocr_pages(tmp_path / "straight.pdf", [2], options=options())[2]
    with pymupdf.open(cuad(SPONSORSHIP)) as original:
        layer = original[1].get_text("words")
    counts: dict[str, int] = {}
    for word in layer:
        counts[word[4].lower()] = counts.get(word[4].lower(), 0) + 1
    unique = {w[4].lower(): pymupdf.Rect(w[:4]) for w in layer if counts[w[4].lower()] == 1 and len(w[4]) >= 6}
    close = total = 0
    for start, end, *box in result.words:
        word = result.text[int(start):int(end)].lower()
        if word in unique:
            total += 1
            close += abs(pymupdf.Rect(box).tl - unique[word].tl) < 4  # points
    assert total >= 30 and close >= 0.9 * total, (close, total)


def test_ocr_of_a_rotated_page_gives_boxes_on_the_unrotated_page(tmp_path: Path) -> None:
    doc = pymupdf.open()
    page = doc.new_page(width=300, height=500)
    page.insert_text((50, 100), "Governing law of Delaware", fontsize=14)
    page.set_rotation(90)
    truth = [pymupdf.Rect(w[:4]) for w in page.get_text("words")]
    doc.save(tmp_path / "rotated.pdf")
    result = pdf_ocr_pages(tmp_path / "rotated.pdf", [1], options=options())[1]
    assert words(result.text) == ["governing", "law", "of", "delaware"]
    for (_start, _end, *box), true_box in zip(result.words, truth, strict=True):
        assert abs(pymupdf.Rect(box).tl - true_box.tl) < 6


def test_blank_page_and_photo_give_no_text_with_a_reason(tmp_path: Path) -> None:
    doc = pymupdf.open()
    doc.new_page()
    photo = doc.new_page()
    pixmap = pymupdf.Pixmap(pymupdf.csGRAY, 400, 300, bytes((x * 7 + y * 3) % 256 for y in range(300)
                                                            for x in range(400)), False)
    photo.insert_image(photo.rect, pixmap=pixmap)
    doc.save(tmp_path / "pictures.pdf")
    results = pdf_ocr_pages(tmp_path / "pictures.pdf", [1, 2], options=options())
    assert results[1].text == "" and results[1].note == "blank page"
    assert results[2].text == "" and results[2].note
    assert not results[1].failed and not results[2].failed  # read, and found empty


def test_a_page_over_its_time_budget_is_given_up_and_the_others_are_read(scanned_contract: Path) -> None:
    results = pdf_ocr_pages(scanned_contract, [1, 2], options=options(page_timeout_s=0.001, processes=1))
    for result in results.values():
        assert result.text == ""
        assert result.note.startswith("OCR stopped after"), result.note
        assert result.failed


def test_missing_language_data_is_reported_as_ocr_unavailable(scanned_contract: Path, tmp_path: Path) -> None:
    with pytest.raises(OcrUnavailable) as caught:
        pdf_ocr_pages(scanned_contract, [1], options=options(tessdata=str(tmp_path)))
    assert "Tesseract cannot start" in caught.value.reason


def test_a_passage_is_highlighted_as_one_box_per_stretch_of_line() -> None:
    # "Term of the agreement\nshall be two years." as OCR keeps it: (start, end, x0, y0, x1, y1) per word.
    words = [[0, 4, 72, 100, 100, 112], [5, 7, 104, 100, 116, 112], [8, 11, 120, 101, 140, 112],
             [12, 21, 144, 100, 210, 113], [22, 27, 72, 116, 104, 128], [28, 30, 108, 116, 122, 128],
             [31, 34, 126, 116, 150, 128], [35, 41, 154, 116, 196, 129]]
    assert passage_boxes(words, 0, 41) == [(72, 100, 210, 113), (72, 116, 196, 129)]
    # A passage starting mid-line covers only its own words.
    assert passage_boxes(words, 8, 27) == [(120, 100, 210, 113), (72, 116, 104, 128)]
    assert passage_boxes(words, 100, 120) == []
    # A second column beside the first is another stretch, not one box across the gutter.
    columns = [[0, 4, 72, 100, 120, 112], [5, 9, 320, 100, 360, 112], [10, 14, 72, 116, 120, 128]]
    assert len(passage_boxes(columns, 0, 14)) == 3
