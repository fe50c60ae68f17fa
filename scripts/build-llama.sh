#!/usr/bin/env bash
# Builds llama-cpp-python into a wheelhouse outside the checkout and installs it into .venv.
#
# Why a build of our own: pip's default build compiles llama.cpp with -march=native, which bakes the build
# machine's instruction set into the library. On a CPU that advertises AMX but whose hypervisor does not let it
# run, such a build dies with SIGILL at the first token; on an older CPU it dies on AVX-512. We build every x86
# CPU variant as a loadable backend (GGML_BACKEND_DL + GGML_CPU_ALL_VARIANTS) and choose one at run time with a
# self-test that generates tokens in a child process (docs_app/adapters/llm_runtime.py).
#
# The wheel is kept in a folder named after the version and the build flags, so pip's own cache (keyed by the
# source archive, not by CMAKE_ARGS) can never hand back a natively compiled wheel from an earlier install.
#
#   scripts/build-llama.sh           # CPU: all x86 variants, chosen at run time (the default)
#   scripts/build-llama.sh --cuda    # GPU answer workers: CUDA backend + the CPU variants (needs nvcc)
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=0.3.36
FLAVOUR=cpu-variants
CMAKE_FLAGS="-DGGML_NATIVE=OFF -DGGML_BACKEND_DL=ON -DGGML_CPU_ALL_VARIANTS=ON -DLLAVA_BUILD=OFF"
if [[ "${1:-}" == "--cuda" ]]; then
  FLAVOUR=cuda-cpu-variants
  CMAKE_FLAGS="$CMAKE_FLAGS -DGGML_CUDA=ON"
fi
WHEELHOUSE="${DOCS_WHEELHOUSE:-$HOME/.cache/private-docs/wheels}/llama-cpp-python-$VERSION-$FLAVOUR"
PIP=(.venv/bin/python -m pip)
installed_with_variants() {
  .venv/bin/python - "$VERSION" <<'PY' 2>/dev/null
import importlib.metadata, pathlib, sys
import importlib.util
spec = importlib.util.find_spec("llama_cpp")
package = pathlib.Path(next(iter(spec.submodule_search_locations)))
ok = importlib.metadata.version("llama-cpp-python") == sys.argv[1] and any(
    any(d.glob("libggml-cpu-x64.so")) for d in (package / "lib", package.parent / "bin"))
sys.exit(0 if ok else 1)
PY
}
if [[ "$FLAVOUR" == cpu-variants ]] && installed_with_variants; then
  exit 0
fi
if ! ls "$WHEELHOUSE"/llama_cpp_python-"$VERSION"-*.whl >/dev/null 2>&1; then
  echo "building llama-cpp-python $VERSION ($FLAVOUR) — once per machine, about 20 minutes on 2 cores"
  mkdir -p "$WHEELHOUSE"
  CMAKE_ARGS="$CMAKE_FLAGS" CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
    "${PIP[@]}" wheel --quiet --no-deps --no-cache-dir --no-binary llama-cpp-python \
    --wheel-dir "$WHEELHOUSE" "llama-cpp-python==$VERSION" 2>&1 | { grep -v "WARNING: Location 'file://" || true; }
fi
"${PIP[@]}" install --quiet --no-index --find-links "$WHEELHOUSE" --force-reinstall --no-deps \
  "llama-cpp-python==$VERSION" 2>&1 | { grep -v "WARNING: Location 'file://" || true; }
"${PIP[@]}" install --quiet "llama-cpp-python==$VERSION" 2>&1 | { grep -v "WARNING: Location 'file://" || true; }
