"""The viewer's page renders: a child forked by the PDF server against a fresh child, in one run.

    .venv/bin/python bench/render.py --pdfs ../shared/data/legal/cuad_pdf --pages 40 --rounds 5

Renders the first pages of the first PDFs (up to --pages renders, with the cited-passage highlight drawn on every
other one, as a citation click asks) both ways through services.pages, in the installation's sandbox (bubblewrap
where it runs), alternating fresh and served each round so load falls on both alike. Each figure is the median over
rounds of the median time of one render (the page cache is not involved: every render is done). The last line is
one JSON object with every figure and the load average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from docs_app.devservices import configure


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pdfs", type=Path, required=True)
    parser.add_argument("--pages", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-render-"))
    configure(workdir)
    import django

    django.setup()
    from docs_app.pipeline.pdf_extract import pdf_extract_pages
    from docs_app.services.pages import render_fresh, render_request, render_served
    from docs_app.services.sandboxing import pdf_sandbox

    sandbox = pdf_sandbox()
    jobs: list[tuple[Path, int, dict[str, Any] | None]] = []
    for pdf in sorted(p for p in args.pdfs.resolve().rglob("*") if p.suffix.lower() == ".pdf"):
        for page in pdf_extract_pages(pdf, max_pages=500, timeout_s=60, memory_limit_mb=1024)[:4]:
            text = page.text
            highlight = ({"start": 0, "end": min(len(text), 300), "text": text[:300]}
                         if len(jobs) % 2 and text.strip() else None)
            jobs.append((pdf, page.number, highlight))
        if len(jobs) >= args.pages:
            break
    jobs = jobs[: args.pages]
    out = workdir / "page.png"
    load_before = os.getloadavg()
    medians: dict[str, list[float]] = {"fresh": [], "served": []}
    with out.open("wb") as handle:
        render_served(sandbox, render_request(path=jobs[0][0], page=1, out=out, highlight=None), path=jobs[0][0],
                      out_fd=handle.fileno())  # the server's own start is paid once, before timing
    for round_number in range(args.rounds):
        for way in (("fresh", "served") if round_number % 2 == 0 else ("served", "fresh")):
            times = []
            for pdf, number, highlight in jobs:
                request = render_request(path=pdf, page=number, out=out, highlight=highlight)
                with out.open("wb") as handle:
                    started = time.perf_counter()
                    if way == "fresh":
                        reply, code = render_fresh(sandbox, request, path=pdf, out=out)
                    else:
                        served = render_served(sandbox, request, path=pdf, out_fd=handle.fileno())
                        assert served is not None, "the PDF server could not serve"
                        reply, code = served
                    times.append(time.perf_counter() - started)
                assert code == 0 and reply.get("ok"), reply
            medians[way].append(statistics.median(times))
            print(f"round {round_number + 1} {way:6}: median {1000 * medians[way][-1]:.1f} ms a render "
                  f"over {len(times)}", flush=True)
    fresh_ms = 1000 * statistics.median(medians["fresh"])
    served_ms = 1000 * statistics.median(medians["served"])
    print(json.dumps({
        "renders": len(jobs), "rounds": args.rounds, "sandbox": "namespaces" if sandbox.uses_namespaces() else "basic",
        "fresh_ms": round(fresh_ms, 1), "served_ms": round(served_ms, 1), "speedup": round(fresh_ms / served_ms, 2),
        "fresh_rounds_ms": [round(1000 * x, 1) for x in medians["fresh"]],
        "served_rounds_ms": [round(1000 * x, 1) for x in medians["served"]],
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()], "cores": os.cpu_count(),
    }))
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
