"""Whether a process of this host is still running: for claims and temporary files named by process id."""

from __future__ import annotations

import os


def process_alive(pid: int) -> bool:
    """True while a process with this id exists on this host (one we may not signal exists too)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
