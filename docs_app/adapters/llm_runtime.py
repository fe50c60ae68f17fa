"""Which llama.cpp CPU backend runs on this machine, proven by generating tokens in a child process.

llama.cpp is built with every x86 CPU variant as a loadable backend (scripts/build-llama.sh). Each variant
reports a score from CPUID; upstream loads the best-scoring one. CPUID is not proof: a virtual machine may
advertise AMX that its hypervisor never enabled, and the sapphirerapids variant then dies with SIGILL at the
first token. So a variant is chosen by running it: variants are tried from the best score down, each in a
child process that loads the model and generates a few tokens; the first that exits cleanly wins. The choice
is remembered per machine (CPU flags, backend files, model file) and re-proven by one child at every worker
start, so a changed CPU, rebuilt library or new model file is noticed.

No Django here: settings come in as arguments. The child is this module run as a script.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import importlib.util
import json
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

CPU_VARIANT_PREFIX = "libggml-cpu-"
GPU_BACKEND_NAMES = ("cuda", "hip", "vulkan", "sycl", "musa")
# The environment variable that hands the chosen backend files to the worker processes (':'-separated).
BACKENDS_ENV = "DOCS_LLM_BACKENDS"
SELFTEST_PROMPT = "The capital of France is"
SELFTEST_TOKENS = 4
# Instruction-set flags worth naming in a failure line (the full /proc/cpuinfo list is hundreds of words).
_NOTABLE_FLAGS = ("sse4_2", "avx", "f16c", "fma", "avx2", "avx_vnni", "avx512f", "avx512_vnni", "avx512_bf16",
                  "avx512vbmi", "amx_tile", "amx_int8", "amx_bf16")


class ModelUnavailable(RuntimeError):
    """No llama.cpp backend could generate with the configured model on this machine."""


@dataclass(frozen=True)
class ProbeOutcome:
    variant: str
    ok: bool
    detail: str  # "generated 4 tokens in 1.2 s" or what went wrong ("killed by SIGILL (illegal instruction)")
    seconds: float


@dataclass(frozen=True)
class RuntimeChoice:
    """The outcome of choosing a backend: `ok` with the variant and its files, or the reason it failed."""

    ok: bool
    variant: str
    backend_files: tuple[str, ...]
    cpu_flags: tuple[str, ...]
    tried: tuple[ProbeOutcome, ...] = ()
    reason: str = ""
    checked_at: float = field(default_factory=time.time)

    def describe(self) -> dict[str, object]:
        return {"state": "ok" if self.ok else "failed", "variant": self.variant, "reason": self.reason,
                "cpu_flags": " ".join(self.cpu_flags), "tried": [asdict(t) for t in self.tried],
                "checked_at": self.checked_at}

    def failure_line(self) -> str:
        """One line for an operator: what failed, on which CPU, what to do."""
        tried = "; ".join(f"{t.variant}: {t.detail}" for t in self.tried) or "no CPU backend files found"
        return (f"answer model self-test FAILED ({self.reason}). Tried {tried}. CPU: "
                f"{' '.join(self.cpu_flags) or 'unknown'}. Answers will fail with this reason until it is fixed: "
                "rebuild llama.cpp with scripts/build-llama.sh and check the model file (manage.py ensure_model).")


def backend_dir_default() -> Path:
    """Where this llama-cpp-python build keeps its CPU variants: ggml installs loadable backends in the
    platform's bin directory (site-packages/bin in a wheel), beside the package otherwise. Found without
    importing llama_cpp: importing it loads the libraries."""
    package = _package_dir()
    for candidate in (package / "lib", package.parent / "bin"):
        if cpu_variants(candidate):
            return candidate
    return package / "lib"


def _package_dir() -> Path:
    spec = importlib.util.find_spec("llama_cpp")
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailable("llama-cpp-python is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


def cpu_variants(backend_dir: Path) -> list[Path]:
    return sorted(backend_dir.glob(f"{CPU_VARIANT_PREFIX}*.so"))


def gpu_backends(backend_dir: Path) -> list[Path]:
    return [path for name in GPU_BACKEND_NAMES for path in sorted(backend_dir.glob(f"libggml-{name}*.so"))]


def variant_name(path: Path) -> str:
    return path.name.removeprefix(CPU_VARIANT_PREFIX).removesuffix(".so")


def cpu_flags() -> tuple[str, ...]:
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ()
    match = re.search(r"^flags\s*:\s*(.*)$", text, re.MULTILINE)
    present = set(match.group(1).split()) if match else set()
    return tuple(flag for flag in _NOTABLE_FLAGS if flag in present)


def _fingerprint(*, backend_dir: Path, model_path: Path, gpu_layers: int) -> str:
    """What a remembered choice depends on: the machine's CPU, the backend files, the model file."""
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
        flags = sorted(set(re.findall(r"^flags\s*:\s*(.*)$", cpuinfo, re.MULTILINE)))
    except OSError:
        flags = []
    parts: list[object] = [platform.node(), platform.machine(), flags, gpu_layers]
    for path in [*cpu_variants(backend_dir), *gpu_backends(backend_dir), model_path]:
        stat = path.stat()
        parts.append((str(path), stat.st_size, stat.st_mtime_ns))
    return hashlib.sha256(json.dumps(parts).encode("utf-8")).hexdigest()


# --- probing in a child -------------------------------------------------------------------------------------

ChildRunner = Callable[[Sequence[Path], Path, int, float], ProbeOutcome]


def variant_scores(variants: Sequence[Path]) -> dict[Path, int]:
    """Each variant's own CPUID score (0: the CPU lacks what it needs), read in a child: loading a library
    runs its initialisers, which must not take this process down."""
    if not variants:
        return {}
    # The variants link against libggml-base, which lies beside libggml in the package, not beside them.
    code = ("import ctypes, json, sys\n"
            "ctypes.CDLL(sys.argv[1], mode=ctypes.RTLD_GLOBAL)\n"
            "scores = {}\n"
            "for path in sys.argv[2:]:\n"
            "    try:\n"
            "        fn = ctypes.CDLL(path).ggml_backend_score\n"
            "        fn.restype = ctypes.c_int\n"
            "        scores[path] = fn()\n"
            "    except (OSError, AttributeError):\n"
            "        scores[path] = 0\n"
            "print(json.dumps(scores))\n")
    result = subprocess.run([sys.executable, "-c", code, str(_libggml_path()), *map(str, variants)],
                            capture_output=True, text=True, timeout=60, check=False)
    if result.returncode != 0:
        return dict.fromkeys(variants, 1)  # unknown scores: keep every variant, try them by name order
    scores = json.loads(result.stdout)
    return {path: int(scores.get(str(path), 0)) for path in variants}


def probe_in_child(backend_files: Sequence[Path], model_path: Path, gpu_layers: int, timeout_s: float) -> ProbeOutcome:
    """Load the backend files and the model in a fresh interpreter and generate a few tokens."""
    variant = _variant_of([str(p) for p in backend_files])
    env = {**os.environ, BACKENDS_ENV: os.pathsep.join(map(str, backend_files))}
    started = time.monotonic()
    try:
        result = subprocess.run(
            [sys.executable, "-m", "docs_app.adapters.llm_runtime", str(model_path), str(gpu_layers)],
            capture_output=True, text=True, timeout=timeout_s, env=env, check=False,
            cwd=Path(__file__).resolve().parents[2],
        )
    except subprocess.TimeoutExpired:
        return ProbeOutcome(variant, False, f"no tokens within {timeout_s:.0f} s", time.monotonic() - started)
    seconds = time.monotonic() - started
    if result.returncode < 0:
        number = -result.returncode
        name = signal.Signals(number).name if number in signal.Signals._value2member_map_ else f"signal {number}"
        meaning = {"SIGILL": " (illegal instruction)", "SIGSEGV": " (segmentation fault)"}.get(name, "")
        return ProbeOutcome(variant, False, f"killed by {name}{meaning}", seconds)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1][:300]
        return ProbeOutcome(variant, False, f"exit {result.returncode}: {last}", seconds)
    try:
        report = json.loads(result.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        return ProbeOutcome(variant, False, "no report from the child", seconds)
    tokens = int(report.get("tokens", 0)) if isinstance(report, dict) else 0
    if tokens < 1:
        return ProbeOutcome(variant, False, "the model generated nothing", seconds)
    return ProbeOutcome(variant, True, f"generated {tokens} tokens in {seconds:.1f} s", seconds)


def runtime_choose(*, model_path: Path, backend_dir: Path, gpu_layers: int, cache_path: Path | None,
                   timeout_s: float, run_child: ChildRunner = probe_in_child) -> RuntimeChoice:
    """Prove a backend with the model: the remembered one first (one child), else every CPU variant from the
    best score down. GPU backend files, when present and gpu_layers != 0, are loaded beside each CPU variant."""
    flags = cpu_flags()
    variants = cpu_variants(backend_dir)
    extra = gpu_backends(backend_dir) if gpu_layers else []
    if not variants:
        # A build without loadable CPU variants links its CPU backend in: nothing to choose, still prove it runs.
        outcome = run_child(extra, model_path, gpu_layers, timeout_s)
        return _choice_from([outcome], outcome if outcome.ok else None, [*extra], flags)

    key = _fingerprint(backend_dir=backend_dir, model_path=model_path, gpu_layers=gpu_layers)
    remembered = _remembered(cache_path, key)
    tried: list[ProbeOutcome] = []
    if remembered is not None and remembered.exists():
        outcome = run_child([remembered, *extra], model_path, gpu_layers, timeout_s)
        tried.append(outcome)
        if outcome.ok:
            return _choice_from(tried, outcome, [remembered, *extra], flags)

    scores = variant_scores(variants)
    ranked = sorted((p for p in variants if scores[p] > 0 and p != remembered), key=lambda p: -scores[p])
    for variant in ranked:
        outcome = run_child([variant, *extra], model_path, gpu_layers, timeout_s)
        tried.append(outcome)
        if outcome.ok:
            _remember(cache_path, key, variant)
            return _choice_from(tried, outcome, [variant, *extra], flags)
    return _choice_from(tried, None, [], flags)


def _choice_from(tried: list[ProbeOutcome], winner: ProbeOutcome | None, files: list[Path],
                 flags: tuple[str, ...]) -> RuntimeChoice:
    if winner is None:
        reason = "no llama.cpp CPU backend generated tokens on this machine" if tried else "nothing to try"
        return RuntimeChoice(ok=False, variant="", backend_files=(), cpu_flags=flags, tried=tuple(tried),
                             reason=reason)
    return RuntimeChoice(ok=True, variant=winner.variant, backend_files=tuple(map(str, files)), cpu_flags=flags,
                         tried=tuple(tried))


def _remembered(cache_path: Path | None, key: str) -> Path | None:
    if cache_path is None:
        return None
    try:
        entry = json.loads(cache_path.read_text(encoding="utf-8")).get(key)
    except (OSError, ValueError, AttributeError):
        return None
    return Path(entry) if isinstance(entry, str) else None


def _remember(cache_path: Path | None, key: str, variant: Path) -> None:
    """Keyed by fingerprint so one data directory shared by several hosts keeps each host's choice."""
    if cache_path is None:
        return
    with contextlib.suppress(OSError, ValueError):
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            entries = json.loads(cache_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            entries = {}
        entries = entries if isinstance(entries, dict) else {}
        entries[key] = str(variant)
        fd, temp = tempfile.mkstemp(dir=cache_path.parent, prefix=f".{cache_path.name}.")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(entries, handle)
        os.replace(temp, cache_path)


# --- in the process that generates ---------------------------------------------------------------------------

_loaded: list[str] = []
_proven: RuntimeChoice | None = None


def runtime_prove(*, model_path: Path, backend_dir: Path, gpu_layers: int, cache_path: Path | None,
                  timeout_s: float) -> RuntimeChoice:
    """runtime_choose once per process. The choice goes into the environment, so processes forked or started
    from here (the worker's pool children) use it without proving it again."""
    global _proven
    inherited = [f for f in os.environ.get(BACKENDS_ENV, "").split(os.pathsep) if f]
    if _proven is None and inherited:
        _proven = RuntimeChoice(ok=True, variant=_variant_of(inherited), backend_files=tuple(inherited),
                                cpu_flags=cpu_flags())
    if _proven is None:
        _proven = runtime_choose(model_path=model_path, backend_dir=backend_dir, gpu_layers=gpu_layers,
                                 cache_path=cache_path, timeout_s=timeout_s)
        if _proven.ok:
            os.environ[BACKENDS_ENV] = os.pathsep.join(_proven.backend_files)
    return _proven


def _variant_of(files: Sequence[str]) -> str:
    return next((variant_name(Path(f)) for f in files if Path(f).name.startswith(CPU_VARIANT_PREFIX)), "default")


def backends_load(backend_files: Sequence[str]) -> None:
    """Register the chosen backend libraries with ggml before llama-cpp-python initialises its backends.

    llama_backend_init loads "the best" backends only when none is registered yet, and it looks for them
    beside the Python executable, where they are not; registering ours first makes it use exactly these.
    Idempotent per process.
    """
    wanted = [f for f in backend_files if f not in _loaded]
    if not wanted:
        return
    libggml = _libggml()
    load = libggml.ggml_backend_load
    load.restype = ctypes.c_void_p
    load.argtypes = [ctypes.c_char_p]
    for path in wanted:
        if not load(path.encode()):
            raise ModelUnavailable(f"llama.cpp could not load the backend {path}")
        _loaded.append(path)


def _libggml() -> ctypes.CDLL:
    """libggml as llama-cpp-python loads it (the same file, so the same backend registry)."""
    return ctypes.CDLL(str(_libggml_path()), mode=ctypes.RTLD_GLOBAL)


def _libggml_path() -> Path:
    for name in ("libggml.so", "libggml.so.0"):
        if (path := _package_dir() / "lib" / name).exists():
            return path
    raise ModelUnavailable("libggml.so not found in llama-cpp-python's lib directory")


def _child_main(model_path: str, gpu_layers: int) -> None:
    backends_load([f for f in os.environ.get(BACKENDS_ENV, "").split(os.pathsep) if f])
    from llama_cpp import Llama

    llama = Llama(model_path=model_path, n_ctx=256, n_threads=max(1, min(4, os.cpu_count() or 1)),
                  n_gpu_layers=gpu_layers, seed=0, verbose=False)
    completion = llama.create_completion(SELFTEST_PROMPT, max_tokens=SELFTEST_TOKENS, temperature=0.0)
    if not isinstance(completion, dict):
        raise TypeError("llama-cpp-python streamed a completion that was asked for whole")
    print(json.dumps({"tokens": completion["usage"]["completion_tokens"]}))


if __name__ == "__main__":
    _child_main(sys.argv[1], int(sys.argv[2]))
