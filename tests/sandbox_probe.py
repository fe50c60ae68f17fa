"""Run inside the PDF sandbox by tests/integration/test_sandbox.py: confines itself exactly as the PDF children
do, then tries what a compromised MuPDF would, and prints one JSON line of outcomes."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from docs_app.pipeline.sandbox import confine


def _attempt(action) -> str:  # type: ignore[no-untyped-def]
    try:
        action()
    except OSError as exc:
        return type(exc).__name__
    return "allowed"


def main() -> None:
    # A fresh child reads the request on stdin; one forked by the PDF server (stdin /dev/null) gets it as argument.
    request = json.loads(sys.argv[1] if len(sys.argv) > 1 else sys.stdin.read())
    parent = os.getppid() if request["parent"] == "own" else request["parent"]
    confine(memory_mb=1024, max_file_bytes=0)
    outcomes = {
        "environment": sorted(key for key in os.environ if key.startswith("DOCS_")),
        "socket": _attempt(lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM)),
        "unix_socket": _attempt(lambda: socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)),
        "exec": _attempt(lambda: subprocess.run(["/bin/true"], check=False)),
        "fork": _attempt(os.fork),
        "input": _attempt(lambda: Path(request["input"]).read_bytes()),
        "write_elsewhere": _attempt(lambda: Path(request["write"]).write_text("x")),
        "parent_environ": _attempt(lambda: Path(f"/proc/{parent}/environ").read_bytes()),
        "parent_memory": _attempt(lambda: Path(f"/proc/{parent}/mem").open("rb").close()),
    }
    for name, path in request["secrets"].items():
        outcomes[name] = _attempt(lambda path=path: Path(path).read_bytes())
    print(json.dumps(outcomes))


if __name__ == "__main__":
    main()
