"""The PDF children's sandbox as this installation configures it (docs_app.pipeline.sandbox does the work)."""

from __future__ import annotations

import sys
from pathlib import Path

from django.conf import settings

from docs_app.pipeline.sandbox import PROJECT_ROOT, Sandbox


def pdf_sandbox() -> Sandbox:
    """Hidden from the child: the data directory (stored PDFs, page renders, the development secret key, Chroma
    and Redis files), the stored files' directory wherever it is (DOCS_FILES_DIR, a shared mount), the SQLite
    database's directory and the audit key's directory. A directory that holds the
    code or the Python installation cannot be hidden (the child must run): keep data apart from code."""
    candidates = {Path(settings.DATA_DIR), Path(settings.MEDIA_ROOT), Path(settings.PAGE_CACHE_DIR),
                  Path(settings.AUDIT_KEY_FILE).parent}
    database = settings.DATABASES["default"]
    if str(database["ENGINE"]).endswith("sqlite3"):
        candidates.add(Path(str(database["NAME"])).parent)
    needed = [PROJECT_ROOT, Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve(),
              Path(sys.executable).resolve().parent]
    hidden = [path for path in candidates
              if not any(path == keep or path in keep.parents for keep in needed)]
    return Sandbox(mode=settings.SANDBOX, hidden=tuple(sorted(str(path) for path in hidden)))
