"""What both sandboxed PyMuPDF children (pdf_extract_child, pdf_render_child) and their parents share: how a
child is started and confined, how it guards its protocol and memory, and how it reports running out of it.
MuPDF parses untrusted files, and a bug in it must give an attacker nothing but one short-lived, powerless
process (issue 10, item 6).

Parent side (`Sandbox.command`, `Sandbox.env`):
- a minimal environment: PATH, a locale, PYTHONPATH for the child module; never the parent's (which holds
  DOCS_SECRET_KEY, DOCS_DATABASE_URL and the like in production);
- with bubblewrap (`bwrap`, Debian's `bubblewrap`, installed by scripts/system-deps.sh) every namespace is new:
  no network (only an unconfigured loopback of its own), its own PID space (no /proc of the web or worker
  process to read), no capabilities; the file system is the host's read-only, with a private /tmp, and the data
  directory, the database's directory and the audit key's directory hidden under empty tmpfs mounts; only the
  input file (read-only) and the output directory (writable) are bound back in.

Child side (`pymupdf_limited`, called by each child before it touches the file, which calls `confine`):
- resource limits: address space, no core dump, no new processes, few open files, bounded file size;
- a seccomp filter (no_new_privs first): socket, socketpair, exec, fork/vfork, clone of a process (threads
  stay allowed), ptrace, process_vm_*, and kill fail with EPERM; foreign-architecture system calls kill it.

Modes: "namespaces" requires bubblewrap; "basic" skips it (env, limits and seccomp still apply: no socket, no
exec, but the child sees the file system as the app's user does); "auto" uses bubblewrap when it can start here
and logs once when it cannot.

Imported by the children before anything else: keep it to the standard library (no Django, no numpy).
"""


import ctypes
import functools
import importlib
import json
import logging
import os
import platform
import re
import resource
import shutil
import signal
import struct
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

# A distinct exit code, because under a memory limit there may be no memory left to write JSON.
EXIT_OUT_OF_MEMORY = 86
# The directory that holds the docs_app package, so a child finds it whatever its working dir.
PROJECT_ROOT = Path(__file__).resolve().parents[2]
# MuPDF reports a failed allocation as FzErrorSystem "malloc (16 bytes) failed", not MemoryError.
_ALLOCATION_FAILED = re.compile(r"alloc \(.*\) failed")


def child_command(module: str, *args: str) -> list[str]:
    # -s: no user site directory either.
    return [sys.executable, "-s", "-m", module, *args]


def protocol_out() -> TextIO:
    """Keep the protocol on a private descriptor and point fd 1 at stderr, so that anything MuPDF or another C
    library prints to stdout cannot corrupt the JSON stream."""
    out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    return out


def send(out: TextIO, message: dict[str, object]) -> None:
    out.write(json.dumps(message) + "\n")
    out.flush()


def pymupdf_limited(memory_limit_mb: int, *, max_file_bytes: int) -> Any:
    """PyMuPDF, imported before the limits are set, then the confinement (`confine`: limits and seccomp).

    PyMuPDF 2 also imports pymupdf4llm and its layout analyzer when installed: numpy, onnxruntime and ONNX
    models, 0.6 s and 450 MB of address space that plain get_text never uses. PyMuPDF imports them optionally,
    so marking them missing makes it skip them. The limit is set after the import and before any file is
    touched, rather than before exec: the interpreter and MuPDF (about 90 MB) then always load, and a limit set
    too low fails as "out of memory" instead of as a confusing ImportError. Imported as Any: PyMuPDF ships
    py.typed but its functions carry no annotations."""
    pymupdf = pymupdf_import()
    confine(memory_mb=memory_limit_mb, max_file_bytes=max_file_bytes)
    # MuPDF reports every repair it makes; the parent only keeps a short tail of stderr anyway.
    pymupdf.TOOLS.mupdf_display_errors(False)
    pymupdf.TOOLS.mupdf_display_warnings(False)
    return pymupdf


def pymupdf_import() -> Any:
    """PyMuPDF without the optional layout analyzer (see `pymupdf_limited`); a no-op once imported (pdf_server
    imports it before it forks a child per document)."""
    sys.modules["pymupdf4llm"] = None  # type: ignore[assignment]
    sys.modules["pymupdf.layout"] = None  # type: ignore[assignment]
    return importlib.import_module("pymupdf")


def out_of_memory(exc: BaseException) -> bool:
    return isinstance(exc, MemoryError) or _ALLOCATION_FAILED.search(str(exc.__cause__ or exc)) is not None


def exit_if_out_of_memory(exc: BaseException) -> None:
    """Called with whatever ended a child's work: out of memory ends the process with EXIT_OUT_OF_MEMORY."""
    if out_of_memory(exc):
        os._exit(EXIT_OUT_OF_MEMORY)


# --- parent side: the sandbox a child starts in ---------------------------------------------------------

log = logging.getLogger(__name__)

MODES = ("auto", "namespaces", "basic")
_BWRAP_BASE = ["--unshare-all", "--die-with-parent", "--new-session", "--cap-drop", "ALL",
               "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"]  # noqa: S108 - a private, empty /tmp


@dataclass(frozen=True)
class Sandbox:
    mode: str = "basic"
    # Directories the child must not see at all (data, database, keys): each becomes an empty tmpfs.
    hidden: tuple[str, ...] = field(default_factory=tuple)

    def uses_namespaces(self) -> bool:
        if self.mode == "basic":
            return False
        if bwrap_works():
            return True
        if self.mode == "namespaces":
            raise RuntimeError("DOCS_SANDBOX=namespaces but bubblewrap (bwrap) cannot start here: install the "
                               "bubblewrap package and allow user namespaces, or set DOCS_SANDBOX=basic")
        _warn_once()
        return False

    def command(self, argv: Sequence[str], *, readable: Sequence[Path] = (),
                writable: Sequence[Path] = ()) -> list[str]:
        if not self.uses_namespaces():
            return list(argv)
        binds: list[str] = []
        for hidden in self.hidden:
            binds += ["--tmpfs", hidden]
        for path in readable:
            binds += ["--ro-bind", str(path), str(path)]
        for path in writable:
            binds += ["--bind", str(path), str(path)]
        return [str(shutil.which("bwrap")), *_BWRAP_BASE, *binds, "--chdir", "/", "--", *argv]

    @staticmethod
    def env() -> dict[str, str]:
        return {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONPATH": str(PROJECT_ROOT),
                "PYTHONDONTWRITEBYTECODE": "1", "OMP_NUM_THREADS": "1"}

    def returncode(self, code: int) -> int:
        """bubblewrap reports a child killed by signal N as exit code 128 + N: report it as -N, like Popen."""
        if code > 128 and self.uses_namespaces():
            try:
                return -signal.Signals(code - 128)
            except ValueError:
                return code
        return code


# Environment, limits and seccomp only: what Django-free callers get unless they pass the configured sandbox.
BASIC_SANDBOX = Sandbox(mode="basic")


@functools.cache
def bwrap_works() -> bool:
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return False
    try:
        done = subprocess.run([bwrap, *_BWRAP_BASE, "--", "/bin/true"], capture_output=True, timeout=10,
                              check=False, env={"PATH": "/usr/bin:/bin"})
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


@functools.cache
def _warn_once() -> None:
    log.warning("bubblewrap (bwrap) cannot start here: PDF children run without their own network, PID and "
                "file-system view (environment, limits and the seccomp filter still apply)")


# --- child side: confinement ---------------------------------------------------------------------------

def confine(*, memory_mb: int, max_file_bytes: int, max_open_files: int = 64) -> None:
    """Called by a child after its imports and before it reads the untrusted file."""
    limit = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    # A core dump would write the confidential document's pages to disk.
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))
    resource.setrlimit(resource.RLIMIT_NOFILE, (max_open_files, max_open_files))
    resource.setrlimit(resource.RLIMIT_FSIZE, (max_file_bytes, max_file_bytes))
    seccomp_install()


# seccomp_data: nr (u32) at 0, arch (u32) at 4, instruction pointer at 8, args (u64 each) from 16.
_LD_W_ABS, _JEQ, _JGE, _JSET, _RET = 0x20, 0x15, 0x35, 0x45, 0x06
_ALLOW, _KILL_PROCESS = 0x7FFF0000, 0x80000000
_EPERM, _ENOSYS = 0x00050000 | 1, 0x00050000 | 38
_CLONE_THREAD = 0x00010000
_X32_BIT = 0x40000000
# (audit arch, {syscall: action}, clone's number)
_ARCHES: dict[str, tuple[int, dict[int, int], int]] = {
    "x86_64": (0xC000003E, {41: _EPERM, 53: _EPERM, 59: _EPERM, 322: _EPERM, 57: _EPERM, 58: _EPERM,
                            435: _ENOSYS, 101: _EPERM, 310: _EPERM, 311: _EPERM, 62: _EPERM}, 56),
    "aarch64": (0xC00000B7, {198: _EPERM, 199: _EPERM, 221: _EPERM, 281: _EPERM, 435: _ENOSYS, 117: _EPERM,
                             270: _EPERM, 271: _EPERM, 129: _EPERM}, 220),
}


def _filter(machine: str) -> list[tuple[int, int, int, int]]:
    arch, denied, clone = _ARCHES[machine]
    program = [(_LD_W_ABS, 0, 0, 4), (_JEQ, 1, 0, arch), (_RET, 0, 0, _KILL_PROCESS), (_LD_W_ABS, 0, 0, 0)]
    if machine == "x86_64":  # the x32 ABI numbers the same calls differently
        program += [(_JGE, 0, 1, _X32_BIT), (_RET, 0, 0, _EPERM)]
    for number, action in denied.items():
        program += [(_JEQ, 0, 1, number), (_RET, 0, 0, action)]
    # clone: a thread (CLONE_THREAD in the flags, the low word of args[0]) is allowed, a process is not.
    program += [(_JEQ, 0, 4, clone), (_LD_W_ABS, 0, 0, 16), (_JSET, 0, 1, _CLONE_THREAD),
                (_RET, 0, 0, _ALLOW), (_RET, 0, 0, _EPERM), (_RET, 0, 0, _ALLOW)]
    return program


def seccomp_install() -> None:
    machine = platform.machine()
    if machine not in _ARCHES or os.uname().sysname != "Linux":
        raise OSError(f"no seccomp filter for {machine}: refusing to parse untrusted PDFs unconfined")
    program = _filter(machine)
    raw = b"".join(struct.pack("HBBI", *insn) for insn in program)
    buffer = ctypes.create_string_buffer(raw, len(raw))

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    fprog = SockFprog(len(program), ctypes.cast(buffer, ctypes.c_void_p))
    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_no_new_privs, pr_set_seccomp, seccomp_mode_filter = 38, 22, 2
    if libc.prctl(pr_set_no_new_privs, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")
    if libc.prctl(pr_set_seccomp, seccomp_mode_filter, ctypes.byref(fprog), 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_SECCOMP) failed")
