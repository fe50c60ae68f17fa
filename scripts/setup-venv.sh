#!/usr/bin/env bash
# Creates .venv and installs the app with its test tools. torch is installed first and pinned: this machine
# carries the CPU build on disk, and an unpinned torch would pull a multi-GB CUDA build. llama-cpp-python
# compiles from source the first time (about 4 minutes on 2 cores); pip caches the wheel afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-}"
if [[ -z "$PY" ]]; then
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
      PY="$candidate"; break
    fi
  done
fi
[[ -n "$PY" ]] || { echo "Python 3.11 is required (set PYTHON=/path/to/python3.11)" >&2; exit 1; }
[[ -x .venv/bin/python ]] || "$PY" -m venv .venv
pip_install() {
  # This machine's pip configuration names local mirrors that may be absent; pip warns about each one.
  .venv/bin/python -m pip install --quiet "$@" 2>&1 | { grep -v "WARNING: Location 'file://" || true; }
}
pip_install --upgrade pip wheel
pip_install "torch==2.13.0"
# Before the project: pip would otherwise compile llama.cpp natively for this CPU (see build-llama.sh).
scripts/build-llama.sh
pip_install ".[dev]"
echo "virtualenv ready: .venv"
