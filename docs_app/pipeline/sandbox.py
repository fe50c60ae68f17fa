"""What both sandboxed PyMuPDF children (pdf_extract_child, pdf_render_child) and their parents share: how a
child is started, how it guards its protocol and memory, and how it reports running out of it.

Imported by the children before anything else: keep it to the standard library (no Django, no numpy).
"""

import importlib
import json
import os
import re
import resource
import sys
from pathlib import Path
from typing import Any, TextIO

# A distinct exit code, because under a memory limit there may be no memory left to write JSON.
EXIT_OUT_OF_MEMORY = 86
# The directory that holds the docs_app package, so a child finds it whatever its working dir.
_PROJECT_ROOT = Path(__file__).resolve().parents[2]
# MuPDF reports a failed allocation as FzErrorSystem "malloc (16 bytes) failed", not MemoryError.
_ALLOCATION_FAILED = re.compile(r"alloc \(.*\) failed")


def child_command(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


def child_env() -> dict[str, str]:
    """The parent's environment with the project on PYTHONPATH (kept ahead of what was there)."""
    python_path = os.pathsep.join(filter(None, [str(_PROJECT_ROOT), os.environ.get("PYTHONPATH")]))
    return dict(os.environ, PYTHONPATH=python_path)


def protocol_out() -> TextIO:
    """Keep the protocol on a private descriptor and point fd 1 at stderr, so that anything MuPDF or another C
    library prints to stdout cannot corrupt the JSON stream."""
    out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    return out


def send(out: TextIO, message: dict[str, object]) -> None:
    out.write(json.dumps(message) + "\n")
    out.flush()


def pymupdf_limited(memory_limit_mb: int) -> Any:
    """PyMuPDF, imported before the limits are set, then an address-space limit and no core dump.

    PyMuPDF 2 also imports pymupdf4llm and its layout analyzer when installed: numpy, onnxruntime and ONNX
    models, 0.6 s and 450 MB of address space that plain get_text never uses. PyMuPDF imports them optionally,
    so marking them missing makes it skip them. The limit is set after the import and before any file is
    touched, rather than before exec: the interpreter and MuPDF (about 90 MB) then always load, and a limit set
    too low fails as "out of memory" instead of as a confusing ImportError. Imported as Any: PyMuPDF ships
    py.typed but its functions carry no annotations."""
    sys.modules["pymupdf4llm"] = None  # type: ignore[assignment]
    sys.modules["pymupdf.layout"] = None  # type: ignore[assignment]
    pymupdf: Any = importlib.import_module("pymupdf")
    limit = memory_limit_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    # A core dump would write the confidential document's pages to disk.
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    # MuPDF reports every repair it makes; the parent only keeps a short tail of stderr anyway.
    pymupdf.TOOLS.mupdf_display_errors(False)
    pymupdf.TOOLS.mupdf_display_warnings(False)
    return pymupdf


def out_of_memory(exc: BaseException) -> bool:
    return isinstance(exc, MemoryError) or _ALLOCATION_FAILED.search(str(exc.__cause__ or exc)) is not None


def exit_if_out_of_memory(exc: BaseException) -> None:
    """Called with whatever ended a child's work: out of memory ends the process with EXIT_OUT_OF_MEMORY."""
    if out_of_memory(exc):
        os._exit(EXIT_OUT_OF_MEMORY)
