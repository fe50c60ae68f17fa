"""A confined PyMuPDF "zygote": one long-lived process per process that reads PDFs (an ingest worker, a web
process), which has imported PyMuPDF once and forks one child per document or page render (issue 14). A fresh
extraction child spends about 0.11 s of its 0.15 s of CPU starting the interpreter and importing PyMuPDF's
bindings; a child forked from this server starts with them in memory.

The confinement of the child that reads the document is the same as a fresh child's (pipeline.sandbox): the server
is started in the sandbox (bubblewrap's namespaces when available, the minimal environment), and each forked child
sets the resource limits and the seccomp filter itself (`pymupdf_limited`, as a fresh child does) before it opens
the file. The file is never bound into the server's namespace: the worker opens it and passes the descriptor, which
the child finds at `SERVED_FILE`. What differs, and why it is acceptable:
- The server itself is not under seccomp (it must fork). It never reads a document, drops the ability to be
  inspected (PR_SET_DUMPABLE 0: no /proc/<pid>/mem, environ or ptrace for a process of the same user; its
  children inherit it, so no core dump either), and a child cannot signal or trace it (seccomp).
- Children of one server share its address-space layout (no new ASLR draw per document). Each child still has
  no socket, no exec, no new process and no file it may write; one server serves one process.
- A child's control socket to the server is closed before anything else runs.

Protocol (a SOCK_SEQPACKET pair; one message per datagram): the server sends {"ready": true} once PyMuPDF is
imported. The worker sends {"module": M, "args": [...]} with four descriptors (the PDF, the child's stdout, its
stderr, and the read end of a pipe whose other end the worker closes to have the child killed: one pipe per child,
so a late kill can never reach the next document), then any extra ones (a render's output file, found from
SERVED_EXTRA_FD on); the server forks, and the child runs `M.main()` with `sys.argv = [M, *args]`. The server
answers every request with one {"exit": code} (negative: killed by that signal, as subprocess reports it). The
server ends when the worker's end of the socket closes, killing a child still running. A worker is any process
that extracts or renders: ingest workers, and web processes for the viewer's pages.

Server side: stdlib and pipeline.sandbox only (it runs in the sandbox's minimal environment).
"""

from __future__ import annotations

import ctypes
import fcntl
import functools
import importlib
import json
import logging
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path

from docs_app.pipeline.sandbox import Sandbox, child_command, pymupdf_import

# Imported by the server before it forks, so a child does not import (and, with bytecode writing off in the
# sandbox, compile) them per document.
PRELOADED = ("docs_app.pipeline.pdf_extract_child", "docs_app.pipeline.pdf_render_child")
# The PDF's descriptor in a served child: its path for PyMuPDF (the magic link works in any namespace).
SERVED_FD = 3
SERVED_FILE = f"/proc/self/fd/{SERVED_FD}"
# The first of the extra descriptors a request may pass (a render's output file), in order from here on.
SERVED_EXTRA_FD = SERVED_FD + 1
_MAX_EXTRA_FDS = 2
_REQUEST_FDS = 4  # the PDF, stdout, stderr, the kill pipe
_MESSAGE_BYTES = 1 << 16
_READY_TIMEOUT_S = 60.0
# After a server failed to start, per-document children are used for this long before trying again.
_RETRY_AFTER_S = 300.0
_PR_SET_PDEATHSIG, _PR_SET_DUMPABLE = 1, 4

log = logging.getLogger(__name__)


class ServerUnavailable(Exception):
    """The server could not start or died: the caller starts a fresh child instead."""


class ServerLost(Exception):
    """The server died while a child read a document: nothing is known about the document itself."""


# --- worker side ------------------------------------------------------------------------------------------

class ServedChild:
    """A document's child forked by the server: what `pdf_extract.run_started` needs of a child process."""

    def __init__(self, server: PdfServer, stdout_fd: int, stderr_fd: int, kill_fd: int) -> None:
        self._server = server
        self.stdout_fd = stdout_fd
        self.stderr_fd = stderr_fd
        self._kill_fd: int | None = kill_fd
        self._returncode: int | None = None

    def wait(self, timeout: float) -> int:
        """The child's exit code; subprocess.TimeoutExpired after `timeout` seconds."""
        if self._returncode is None:
            self._returncode = self._server.exit_code(timeout)
        return self._returncode

    def kill(self) -> None:
        if self._returncode is None:
            self._close_kill_pipe()
            try:
                self._returncode = self._server.exit_code(_READY_TIMEOUT_S)
            except (subprocess.TimeoutExpired, ServerLost):
                self._server.close()

    def close(self) -> None:
        self._close_kill_pipe()
        os.close(self.stdout_fd)
        os.close(self.stderr_fd)

    def _close_kill_pipe(self) -> None:
        if self._kill_fd is not None:
            os.close(self._kill_fd)
            self._kill_fd = None


class PdfServer:
    """The worker's end of one server, started in `sandbox`."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.owner = os.getpid()
        self._socket, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            command = sandbox.command(child_command("docs_app.pipeline.pdf_server", str(theirs.fileno())))
            # stderr is inherited: a server that fails to start says why in the worker's log.
            self._process = subprocess.Popen(command, env=sandbox.env(), stdin=subprocess.DEVNULL,
                                             stdout=subprocess.DEVNULL, pass_fds=[theirs.fileno()],
                                             start_new_session=True)
        finally:
            theirs.close()
        try:
            if json.loads(self._receive(_READY_TIMEOUT_S)) != {"ready": True}:
                raise ServerUnavailable("the PDF server did not report ready")
        except (ServerLost, subprocess.TimeoutExpired, ValueError) as exc:
            self.close()
            raise ServerUnavailable(f"the PDF server did not start ({type(exc).__name__})") from exc

    def alive(self) -> bool:
        return self.owner == os.getpid() and self._process.poll() is None

    def spawn(self, module: str, args: Sequence[str], *, file: Path, extra_fds: Sequence[int] = ()) -> ServedChild:
        """Fork a child that runs `module.main()` with `args`, the file open at SERVED_FILE and `extra_fds` (the
        caller's, left open) from SERVED_EXTRA_FD on."""
        if len(extra_fds) > _MAX_EXTRA_FDS:
            raise ValueError(f"at most {_MAX_EXTRA_FDS} extra descriptors")
        pdf = os.open(file, os.O_RDONLY | os.O_CLOEXEC)
        stdout_read, stdout_write = os.pipe()
        stderr_read, stderr_write = os.pipe()
        kill_read, kill_write = os.pipe()
        try:
            request = json.dumps({"module": module, "args": list(args)}).encode()
            socket.send_fds(self._socket, [request], [pdf, stdout_write, stderr_write, kill_read, *extra_fds])
        except OSError as exc:
            for fd in (stdout_read, stderr_read, kill_write):
                os.close(fd)
            self.close()
            raise ServerUnavailable(f"the PDF server is gone ({exc})") from exc
        finally:
            for fd in (pdf, stdout_write, stderr_write, kill_read):
                os.close(fd)
        return ServedChild(self, stdout_read, stderr_read, kill_write)

    def exit_code(self, timeout: float) -> int:
        message = json.loads(self._receive(timeout))
        if not isinstance(message, dict) or not isinstance(message.get("exit"), int):
            self.close()
            raise ServerLost("the PDF server sent an unexpected message")
        return int(message["exit"])

    def close(self) -> None:
        self._socket.close()
        if self._process.poll() is None:
            self._process.kill()
        self._process.wait()

    def _receive(self, timeout: float) -> bytes:
        if self._socket.fileno() < 0:
            raise ServerLost("the PDF server was closed")
        ready, _, _ = select.select([self._socket], [], [], max(timeout, 0))
        if not ready:
            raise subprocess.TimeoutExpired("pdf_server", timeout)
        try:
            data = self._socket.recv(_MESSAGE_BYTES)
        except OSError:
            data = b""
        if not data:
            self.close()
            raise ServerLost("the PDF server ended")
        return data


_servers: dict[Sandbox, PdfServer] = {}
_lock = threading.Lock()
_unavailable_until = 0.0


@contextmanager
def pdf_server(sandbox: Sandbox) -> Iterator[PdfServer | None]:
    """This process's server for `sandbox`, started on first use, for one document at a time. None: use a fresh
    child (the server is busy with another thread's document, or it cannot start here)."""
    global _unavailable_until
    if not _lock.acquire(blocking=False):
        yield None
        return
    try:
        server = _servers.get(sandbox)
        if server is None or not server.alive():
            server = None
            if time.monotonic() >= _unavailable_until:
                try:
                    server = _servers[sandbox] = PdfServer(sandbox)
                except (OSError, ServerUnavailable) as exc:
                    _unavailable_until = time.monotonic() + _RETRY_AFTER_S
                    log.warning("PDF server unavailable, each document starts its own child: %s", exc)
        yield server
    finally:
        _lock.release()


# --- server side --------------------------------------------------------------------------------------------

def _prctl(option: int, value: int) -> None:
    if _libc().prctl(option, value, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), f"prctl({option}) failed")


@functools.cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def serve(control: socket.socket) -> None:
    pymupdf_import()
    for module in PRELOADED:
        importlib.import_module(module)
    _prctl(_PR_SET_DUMPABLE, 0)
    control.send(json.dumps({"ready": True}).encode())
    while True:
        try:
            message, fds, _, _ = socket.recv_fds(control, _MESSAGE_BYTES, _REQUEST_FDS + _MAX_EXTRA_FDS)
        except OSError:
            return
        if not message:
            return
        code: int | None = 1  # a request without its descriptors runs nothing
        pid = os.fork() if len(fds) >= _REQUEST_FDS else None
        if pid == 0:
            _child(control, json.loads(message), fds)
        kill = fds.pop(_REQUEST_FDS - 1) if pid is not None else None
        for fd in fds:  # the child's stdout ends when the child does: only it holds the write end now
            os.close(fd)
        if pid is not None and kill is not None:
            code = _watch(control, pid, kill)
        if code is None:
            return
        try:
            control.send(json.dumps({"exit": code}).encode())
        except OSError:  # the worker went away as the child ended
            return


def _watch(control: socket.socket, pid: int, kill: int) -> int | None:
    """Wait for the child, killing it when the worker closes its end of `kill`; None when the worker is gone (the
    child is killed)."""
    child = os.pidfd_open(pid)
    watched = [control.fileno(), child, kill]
    try:
        while True:
            ready, _, _ = select.select(watched, [], [])
            if child in ready:
                _, status = os.waitpid(pid, 0)
                return os.waitstatus_to_exitcode(status)
            if kill in ready:
                os.kill(pid, signal.SIGKILL)
                watched.remove(kill)
            if control.fileno() in ready:
                if not control.recv(_MESSAGE_BYTES, socket.MSG_PEEK):
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
                    return None
                watched.remove(control.fileno())  # a request before this one's answer: read once it is sent
    finally:
        os.close(child)
        os.close(kill)


def _child(control: socket.socket, request: dict[str, object], fds: list[int]) -> None:
    """In the forked child: never returns."""
    code = 1
    try:
        control.close()
        _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        # Above every number in play first, so that no dup2 below overwrites a descriptor not yet placed.
        above = SERVED_EXTRA_FD + _MAX_EXTRA_FDS
        pdf, stdout, stderr, _kill, *extra = (fcntl.fcntl(fd, fcntl.F_DUPFD, above) for fd in fds)
        os.dup2(stdout, 1)
        os.dup2(stderr, 2)
        os.dup2(pdf, SERVED_FD)
        for number, fd in enumerate(extra, start=SERVED_EXTRA_FD):
            os.dup2(fd, number)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        placed = {0, 1, 2, SERVED_FD, *range(SERVED_EXTRA_FD, SERVED_EXTRA_FD + len(extra))}
        os.closerange(max(placed) + 1, os.sysconf("SC_OPEN_MAX"))
        module, args = str(request["module"]), request["args"]
        assert isinstance(args, list)
        sys.argv = [module, *map(str, args)]
        try:
            importlib.import_module(module).main()
            code = 0
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else int(exit_.code is not None)
    except BaseException:  # reported on stderr as an uncaught exception would be; exit code 1
        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            with suppress(OSError, ValueError):
                stream.flush()
        os._exit(code)


def main() -> None:
    serve(socket.socket(fileno=int(sys.argv[1])))


if __name__ == "__main__":
    main()
