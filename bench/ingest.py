"""Ingestion throughput through the real queue and workers, against the bare embedder on the same chunks.

    .venv/bin/python bench/ingest.py --pdfs ../shared/data/legal/cuad_pdf --limit 50

Prints pages/s and chunks/s of the whole pipeline (upload -> Redis -> Celery ingest workers -> sandboxed
extraction -> chunking -> embedding -> Chroma upsert -> Chunk rows), then the embedding-only throughput of
exactly the same chunk texts in this process (median of several runs): their ratio is the pipeline's
overhead. The last line is one JSON object with all figures.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from docs_app.devservices import configure, services_running


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pdfs", type=Path, required=True)
    parser.add_argument("--limit", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=2, help="ingest worker processes")
    parser.add_argument("--embed-runs", type=int, default=3)
    args = parser.parse_args()
    files = sorted(p for p in args.pdfs.rglob("*") if p.suffix.lower() == ".pdf")[: args.limit]
    if not files:
        sys.exit(f"no PDFs under {args.pdfs}")

    workdir = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    configure(workdir)
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    with services_running(workdir, concurrency=args.concurrency):
        from docs_app import registry
        from docs_app.models import Chunk, Collection, Document, DocumentStatus
        from docs_app.services.actor import SYSTEM
        from docs_app.services.documents import document_upload

        collection = Collection.objects.create(name="bench")
        started = time.perf_counter()
        for path in files:
            with path.open("rb") as source:
                document_upload(collection=collection, name=path.name, source=source, actor=SYSTEM)
        documents = Document.objects.filter(collection=collection)
        while documents.exclude(status__in=[DocumentStatus.READY, DocumentStatus.FAILED]).exists():
            time.sleep(0.25)
        elapsed = time.perf_counter() - started

        ready = documents.filter(status=DocumentStatus.READY)
        pages = sum(d.page_count or 0 for d in ready)
        texts = [" ".join(t.split()) for t in Chunk.objects.filter(document__in=ready).values_list("text", flat=True)]
        failed = {d.original_name: d.error for d in documents.filter(status=DocumentStatus.FAILED)}

        embedder = registry.embedder()
        embedder.embed(texts[:64])  # warm-up: model load and first-call costs are not throughput
        embed_times = []
        for _ in range(args.embed_runs):
            t0 = time.perf_counter()
            embedder.embed(texts)
            embed_times.append(time.perf_counter() - t0)
        embed_s = statistics.median(embed_times)

    figures = {
        "documents": len(files),
        "ready": len(files) - len(failed),
        "failed": len(failed),
        "pages": pages,
        "chunks": len(texts),
        "wall_s": round(elapsed, 2),
        "pages_per_s": round(pages / elapsed, 2),
        "chunks_per_s": round(len(texts) / elapsed, 2),
        "embed_only_chunks_per_s": round(len(texts) / embed_s, 2),
        "embed_only_runs_s": [round(t, 2) for t in embed_times],
        "pipeline_overhead_ratio": round((len(texts) / embed_s) / (len(texts) / elapsed), 2),
        "ingest_processes": args.concurrency,
    }
    print(f"ingested {len(files)} PDFs ({figures['failed']} failed) in {elapsed:.1f} s")
    print(f"pipeline:   {figures['pages_per_s']} pages/s, {figures['chunks_per_s']} chunks/s")
    print(f"embed only: {figures['embed_only_chunks_per_s']} chunks/s (median of {args.embed_runs})")
    print(f"overhead:   pipeline takes {figures['pipeline_overhead_ratio']}x the bare embedding time")
    for name, reason in failed.items():
        print(f"  failed: {name}: {reason}")
    print(json.dumps(figures))
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
