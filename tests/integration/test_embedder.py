"""The embedder chooses its precision where it runs, on evidence: native bf16 instructions and probe embeddings
that match fp32; anything else runs fp32. The real all-MiniLM-L6-v2, no fakes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import redis
from django.utils.html import escape

from docs_app.adapters import embeddings
from docs_app.adapters.embeddings import SentenceTransformerEmbedder, default_threads, packaged_minilm_path
from docs_app.adapters.llm_runtime import cpu_flags
from docs_app.services.model_status import EMBEDDER_STATUS_KEY
from tests.harness import logged_in, make_user, wait_until

CLAUSES = [
    "The Licensee shall pay the Licensor a royalty of five percent (5%) of Net Sales, payable quarterly.",
    "Either party may terminate this Agreement upon thirty (30) days' written notice.",
    "Randomised trial of aspirin for secondary prevention of stroke in 1,200 patients.",
    "who owns the intellectual property?",
]


def _embedder(precision: str = "auto") -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder(model_path=packaged_minilm_path(), precision=precision, threads=1)


def test_auto_runs_bf16_only_with_native_bf16_and_matching_probes() -> None:
    auto = _embedder()
    native = {"avx512_bf16", "amx_bf16"} & set(cpu_flags())
    if native:
        assert auto.choice.precision == "bf16", auto.choice.reason
        assert auto.choice.probe_cosine is not None and auto.choice.probe_cosine >= embeddings.MIN_COSINE
        assert auto.choice.probe_speedup is not None and auto.choice.probe_speedup >= embeddings.MIN_SPEEDUP
    else:
        assert auto.choice.precision == "fp32"
        assert "no native bf16" in auto.choice.reason
    exact = _embedder("fp32")
    assert exact.choice.precision == "fp32" and exact.choice.reason == "fp32 set by DOCS_EMBED_PRECISION"
    fast, full = auto.embed(CLAUSES), exact.embed(CLAUSES)
    assert fast.dtype == np.float32 and fast.shape == (len(CLAUSES), 384)
    assert np.allclose(np.linalg.norm(fast, axis=1), 1.0, atol=1e-5)
    assert float(np.min(np.sum(fast * full, axis=1))) >= embeddings.MIN_COSINE
    described = auto.describe()
    assert described["precision"] == auto.choice.precision and described["threads"] == 1


def test_a_cpu_without_bf16_or_a_probe_that_differs_runs_fp32(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(embeddings, "cpu_flags", lambda: ("sse4_2", "avx", "avx2"))
    assert _embedder().choice.precision == "fp32"
    # Forced bf16 still has to match fp32: an impossible bar sends it back to fp32, with the evidence.
    monkeypatch.setattr(embeddings, "MIN_COSINE", 1.5)
    forced = _embedder("bf16")
    assert forced.choice.precision == "fp32"
    assert "differ from fp32" in forced.choice.reason and forced.choice.probe_cosine is not None
    assert forced.embed(CLAUSES[:1]).dtype == np.float32


def test_threads_share_the_cores_among_a_workers_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(embeddings, "usable_cores", lambda: 8)
    monkeypatch.setenv(embeddings.WORKER_PROCESSES_ENV, "2")
    assert default_threads() == 4
    monkeypatch.setenv(embeddings.WORKER_PROCESSES_ENV, "16")
    assert default_threads() == 1
    monkeypatch.delenv(embeddings.WORKER_PROCESSES_ENV)
    assert default_threads() == 8


@pytest.mark.services
@pytest.mark.django_db
def test_workers_publish_how_they_embed_and_the_status_page_shows_it(services: None, settings) -> None:
    client = redis.Redis.from_url(settings.REDIS_URL)
    wait_until(lambda: bool(client.hgetall(EMBEDDER_STATUS_KEY)), timeout_s=180, what="the embedder status")
    published = [json.loads(v) for v in client.hgetall(EMBEDDER_STATUS_KEY).values()]
    assert all(p["state"] == "ok" and p["precision"] in {"fp32", "bf16"} for p in published), published
    html = logged_in(make_user("admin", is_staff=True)).get("/status/").content.decode()
    assert "Embedding model" in html
    assert f'class="embedder-precision">{published[0]["precision"]} on cpu' in html
    assert escape(published[0]["reason"]) in html
