"""Scanned contracts against the same contracts with their text layer, in one run through the real stack.

    python bench/ocr.py --pdfs ../shared/data/legal/cuad_pdf --queries ../shared/data/legal/cuad_queries_dev.jsonl

Builds image-only copies of the queries' contracts (docs_app.devscans: each page rasterised in greyscale at 150
dpi, turned by up to 1.5 degrees, sensor noise and specks, JPEG quality 60), ingests the originals into one
collection and the scans into another through the queue and the ingest workers (the scans go through OCR in the
sandboxed extraction children), then asks every question against each collection alone with the app's hybrid
retrieval and scores hit@1, hit@5 and MRR as bench/retrieval.py does (a hit: a chunk of the gold contract holding
>= 60% of a gold span's words). Throughput: pages per second of each collection's ingestion (wall clock, upload to
the last document ready, with the load average seen), and OCR's own pages per second per document (its pages over
its OCR time, from the ingestion audit records; a document's readers work in parallel, and the ingest workers read
two documents at once). The last line is one JSON object with every figure. --contracts N keeps the N contracts
with the most questions.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.retrieval import TOP_K, is_hit, words
from docs_app.devscans import scan_pdf
from docs_app.devservices import configure, services_running


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pdfs", type=Path, required=True)
    parser.add_argument("--queries", type=Path, required=True)
    parser.add_argument("--contracts", type=int, default=0, help="keep the N with the most questions (0: all)")
    parser.add_argument("--concurrency", type=int, default=2, help="ingest worker processes")
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args()

    queries = [json.loads(line) for line in args.queries.read_text().splitlines() if line.strip()]
    by_contract = collections.Counter(query["pdf"] for query in queries)
    contracts = [name for name, _ in by_contract.most_common(args.contracts or None)]
    queries = [query for query in queries if query["pdf"] in set(contracts)]

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-ocr-"))
    scans = workdir / "scans"
    started = time.monotonic()
    for seed, name in enumerate(contracts):
        if not (scans / name).exists():
            scan_pdf(args.pdfs / name, scans / name, seed=seed)
    print(f"scanned {len(contracts)} contracts into {scans} in {time.monotonic() - started:.0f} s")

    configure(workdir)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    with services_running(workdir, concurrency=args.concurrency):
        figures = run(queries=queries, contracts=contracts, originals=args.pdfs, scans=scans)
    figures["ingest_processes"] = args.concurrency
    figures["cores"] = len(os.sched_getaffinity(0))
    print(f"work directory: {workdir}")
    print(json.dumps(figures))


def run(*, queries: list[dict[str, Any]], contracts: list[str], originals: Path, scans: Path) -> dict[str, Any]:
    from django.contrib.auth import get_user_model

    from docs_app.models import AuditEvent, Collection, Grant, Page, PageSource, Role

    user, _ = get_user_model().objects.get_or_create(username="bench")
    figures: dict[str, Any] = {"contracts": len(contracts), "queries": len(queries)}
    for label, folder in (("text_layer", originals), ("scanned", scans)):
        collection, _ = Collection.objects.get_or_create(name=label)
        Grant.objects.get_or_create(collection=collection, user=user, defaults={"role": Role.VIEWER})
        ingested = ingest(collection, folder, contracts)
        pages = Page.objects.filter(document__collection=collection)
        ocr = pages.filter(source=PageSource.OCR)
        confidences = sorted(c for c in ocr.values_list("ocr_confidence", flat=True) if c is not None)
        scores = score(user=user, collection=collection, queries=queries)
        # Each document's OCR time, from its ingestion's audit record: pages per second of one document's readers.
        timed = [event.details for event in AuditEvent.objects.filter(action="document.ingest", outcome="ready",
                                                                      collection_id_ref=collection.pk)
                 if event.details.get("ocr_seconds")]
        ocr_seconds = sum(details["ocr_seconds"] for details in timed)
        ocr_rate = round(sum(details["ocr_pages"] for details in timed) / ocr_seconds, 3) if ocr_seconds else None
        figures[label] = {**scores, **ingested, "ocr_pages": ocr.count(), "ocr_seconds": round(ocr_seconds, 1),
                          "ocr_pages_per_s_per_document": ocr_rate,
                          "ocr_confidence_median": confidences[len(confidences) // 2] if confidences else None}
        print(f"{label:10s} hit@1 {scores['hit@1']:.3f}  hit@5 {scores['hit@5']:.3f}  MRR {scores['mrr']:.3f}  "
              f"| {ingested['pages']} pages in {ingested['wall_s']:.0f} s = {ingested['pages_per_s']} pages/s "
              f"(load {ingested['load_before']} -> {ingested['load_after']}), {ocr.count()} pages by OCR"
              + (f" at {ocr_rate} pages/s per document" if ocr_rate else ""))
    figures["hit@5_gap"] = round(figures["text_layer"]["hit@5"] - figures["scanned"]["hit@5"], 3)
    print(f"hit@5 scanned {figures['scanned']['hit@5']:.3f} vs text layer {figures['text_layer']['hit@5']:.3f}: "
          f"gap {figures['hit@5_gap']:.3f}")
    return figures


def ingest(collection: Any, folder: Path, names: list[str]) -> dict[str, Any]:
    from bench.corpus import corpus_ingest
    from docs_app.models import DocumentStatus

    load_before = os.getloadavg()[0]
    started = time.monotonic()
    documents = corpus_ingest(collection, [folder / name for name in names])
    wall = time.monotonic() - started
    failed = dict(documents.filter(status=DocumentStatus.FAILED).values_list("original_name", "error"))
    for name, error in failed.items():
        print(f"  failed: {name}: {error}")
    pages = sum(documents.filter(status=DocumentStatus.READY).values_list("page_count", flat=True))
    return {"ready": documents.filter(status=DocumentStatus.READY).count(), "failed": len(failed), "pages": pages,
            "wall_s": round(wall, 1), "pages_per_s": round(pages / wall, 3),
            "load_before": round(load_before, 1), "load_after": round(os.getloadavg()[0], 1)}


def score(*, user: Any, collection: Any, queries: list[dict[str, Any]]) -> dict[str, float]:
    from docs_app.models import Document
    from docs_app.selectors.retrieval import RankingOptions, chunks_retrieve

    by_name = dict(Document.objects.filter(collection=collection).values_list("original_name", "id"))
    hits1 = hits5 = 0
    reciprocal = 0.0
    for query in queries:
        spans = [words(span) for span in query.get("gold", [])]
        found = chunks_retrieve(user=user, query=query["question"], collection_ids=[collection.pk], k=TOP_K,
                                options=RankingOptions())
        ranks = [rank for rank, chunk in enumerate(found, start=1)
                 if chunk.document_id == by_name.get(query["pdf"]) and is_hit(chunk.text, spans)]
        first = ranks[0] if ranks else None
        hits1 += first == 1
        hits5 += first is not None and first <= 5
        reciprocal += 1 / first if first else 0.0
    n = max(1, len(queries))
    return {"hit@1": round(hits1 / n, 3), "hit@5": round(hits5 / n, 3), "mrr": round(reciprocal / n, 3)}


if __name__ == "__main__":
    main()
