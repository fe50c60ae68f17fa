"""The shared test data (DOCS_SHARED_DATA, default ../shared/data), resolved when a test asks for it: a missing
directory fails the tests that read it, with a clear message, not the collection of every test. No Django here:
pure unit tests use it too."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# The contracts most tests read: short, with a text layer, each ingested in a few seconds.
SPONSORSHIP = "CURAEGISTECHNOLOGIES,INC_05_26_2010-EX-1-CORPORATE SPONSORSHIP AGREEMENT.PDF"
WEB_HOSTING = "GALACTICOMMTECHNOLOGIESINC_11_07_1997-EX-10.46-WEB HOSTING AGREEMENT.PDF"
JOINT_VENTURE = "ACCELERATEDTECHNOLOGIESHOLDINGCORP_04_24_2003-EX-10.13-JOINT VENTURE AGREEMENT.PDF"
# A question that contract answers (the term clause, page 2).
JOINT_VENTURE_QUESTION = "How long is the term of the MightyCell joint venture, and when does it commence?"
MAINTENANCE = "NETZEEINC_11_14_2002-EX-10.3-MAINTENANCE AGREEMENT.PDF"


def shared_data(*parts: str) -> Path:
    """A path under the shared data directory (DOCS_SHARED_DATA, default ../shared/data); fails the calling
    test with a clear message when it is not there."""
    root = Path(os.environ.get("DOCS_SHARED_DATA", REPO.parent / "shared" / "data"))
    path = root.joinpath(*parts)
    if not path.exists():
        pytest.fail(f"shared test data not found: {path} (set DOCS_SHARED_DATA)", pytrace=False)
    return path


def cuad(name: str) -> Path:
    """One CUAD contract by file name."""
    return shared_data("legal", "cuad_pdf", name)


def cuad_first(count: int) -> list[Path]:
    """The first `count` CUAD contracts in name order."""
    return sorted(shared_data("legal", "cuad_pdf").iterdir())[:count]


def cuad_smallest(count: int, *, skip: int = 0) -> list[Path]:
    """`count` of the smallest CUAD contracts (a few pages each): batches that ingest in seconds. The contracts
    named above are left out, so a batch can share a collection with any of them."""
    named = {SPONSORSHIP, WEB_HOSTING, JOINT_VENTURE, MAINTENANCE}
    files = sorted((path for path in shared_data("legal", "cuad_pdf").iterdir() if path.name not in named),
                   key=lambda path: (path.stat().st_size, path.name))
    return files[skip:skip + count]


def hostile(name: str = "") -> Path:
    """A file of the hostile corpus, or (no name) its directory."""
    return shared_data("hostile", name) if name else shared_data("hostile")
