"""Image-only copies of PDFs that look like an office scanner's output, for the tests and the OCR benchmark
(bench/ocr.py): every page rasterised in greyscale at 150 dpi, turned by a slight random skew, with sensor noise
and specks, JPEG-compressed, and placed alone on a page of the original size. Never used by the running app.

    python -m docs_app.devscans SOURCE.pdf|FOLDER OUT_FOLDER [--limit N] [--queries QUERIES.jsonl]

A folder of scans keeps the originals' file names, so bench/retrieval.py runs on it with the same queries file
(--queries: scan only the PDFs those queries name).
"""

from __future__ import annotations

import argparse
import importlib
import json
from pathlib import Path
from typing import Any

import numpy as np

# Imported as Any: PyMuPDF ships py.typed but its functions carry no annotations.
pymupdf: Any = importlib.import_module("pymupdf")

DPI = 150
MAX_SKEW_DEG = 1.5
NOISE_SIGMA = 12.0  # grey levels
SPECKS = 0.002  # share of pixels turned black, and as many white
JPEG_QUALITY = 60


def scan_pdf(source: Path, target: Path, *, seed: int = 0, dpi: int = DPI, max_skew_deg: float = MAX_SKEW_DEG) -> int:
    """Write the scanned copy of `source` to `target`; returns its page count. The same seed, the same scan."""
    rng = np.random.default_rng(seed)
    out: Any = pymupdf.open()
    with pymupdf.open(source) as doc:
        for page in doc:
            jpeg = _scan_page(page, rng, dpi=dpi, max_skew_deg=max_skew_deg)
            sheet = out.new_page(width=page.rect.width, height=page.rect.height)
            sheet.insert_image(sheet.rect, stream=jpeg)
        count = doc.page_count
    target.parent.mkdir(parents=True, exist_ok=True)
    out.save(target, garbage=3, deflate=True)
    out.close()
    return int(count)


def _scan_page(page: Any, rng: np.random.Generator, *, dpi: int, max_skew_deg: float) -> bytes:
    angle = float(rng.uniform(-max_skew_deg, max_skew_deg))
    matrix = pymupdf.Matrix(dpi / 72, dpi / 72).prerotate(angle)
    pixmap = page.get_pixmap(matrix=matrix, colorspace=pymupdf.csGRAY, alpha=False)
    grey = np.frombuffer(pixmap.samples, dtype=np.uint8).reshape(pixmap.height, pixmap.stride)[:, : pixmap.width]
    noisy = grey.astype(np.int16) + rng.normal(0, NOISE_SIGMA, grey.shape).astype(np.int16)
    specks = rng.random(grey.shape)
    noisy[specks < SPECKS] = 0
    noisy[specks > 1 - SPECKS] = 255
    pixels = np.ascontiguousarray(np.clip(noisy, 0, 255).astype(np.uint8))
    scanned = pymupdf.Pixmap(pymupdf.csGRAY, pixmap.width, pixmap.height, pixels.tobytes(), False)
    return bytes(scanned.tobytes("jpeg", jpg_quality=JPEG_QUALITY))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--limit", type=int, default=0)
    parser.add_argument("--queries", type=Path, help="only the PDFs these queries (JSON lines with 'pdf') name")
    args = parser.parse_args()
    sources = sorted(p for p in args.source.iterdir() if p.is_file()) if args.source.is_dir() else [args.source]
    if args.queries:
        named = {json.loads(line)["pdf"] for line in args.queries.read_text().splitlines() if line.strip()}
        sources = [source for source in sources if source.name in named]
    for seed, source in enumerate(sources[: args.limit or None]):
        pages = scan_pdf(source, args.out / source.name, seed=seed)
        print(f"{source.name}: {pages} pages")


if __name__ == "__main__":
    main()
