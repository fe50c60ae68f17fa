"""The audit chain's HMAC key: a file outside the database and outside the data directory (issue 10, item 4).

Kept apart so that whoever copies or edits the database (a stolen backup, a shell on the database host) does not
hold the key that would let them recompute the chain. Created once by setup (`manage.py audit_key_create`,
which scripts/run.sh and the compose file run); never created implicitly, because a silently new key would make
every keyed event fail verification. Django-free: the test settings create the key before Django starts.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

KEY_BYTES = 32


def key_create(path: Path) -> bool:
    """Create the key file (0600, in a 0700 directory) unless it exists; True if it was created now."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as out:
        out.write(secrets.token_hex(KEY_BYTES) + "\n")
    return True


def key_read(path: Path) -> bytes | None:
    """The key, or None when the file is missing or empty."""
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        return None
    return bytes.fromhex(text) if text else None
