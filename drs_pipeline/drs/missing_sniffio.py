"""Remember that ``sniffio`` is not installed, so that httpcore stops looking for it.

httpcore 1.0 imports ``sniffio`` inside ``current_async_library()``, which runs
each time it sets up a lock, several times per request. anyio 4.11 stopped
installing sniffio, and Python does not cache a failed import: every call
searched ``sys.path`` again (thousands of ``stat`` calls per sync, a good part
of the client's CPU). A ``None`` in ``sys.modules`` is Python's own "known
missing" marker: the import then fails at once, with the same ImportError.

Only when sniffio is really absent; if it is ever installed (or becomes a
dependency), this does nothing. Upstream: encode/httpcore discussion #1102,
pull request #1103.
"""

from __future__ import annotations

import importlib.util
import sys


def remember_missing_sniffio() -> None:
    if "sniffio" not in sys.modules and importlib.util.find_spec("sniffio") is None:
        sys.modules["sniffio"] = None  # type: ignore[assignment]
