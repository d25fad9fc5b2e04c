"""numba kernels: hot loops as free `@njit(cache=True, nogil=True)` functions over 1-D arrays.

Kernels own no state and do no I/O; they import only numpy, numba, `mmd.kernels.*` and
`mmd.model.codes`, and report failures as codes. Nothing here compiles at import time; the
import drops cached kernels compiled from other sources (drop_stale_cache).
"""

import hashlib
import os
from pathlib import Path


def _cache_dir() -> Path:
    """Where numba keeps this package's cached kernels (its user-wide locator when
    NUMBA_CACHE_DIR is set, else __pycache__ beside the sources)."""
    from numba.core import config

    src = os.path.dirname(os.path.abspath(__file__))
    # set from NUMBA_CACHE_DIR when numba's config loads (not in numba's type information)
    cache_dir: str = getattr(config, "CACHE_DIR", "")
    if cache_dir:
        tag = hashlib.sha1(src.encode(), usedforsecurity=False).hexdigest()
        return Path(cache_dir) / f"kernels_{tag}"
    return Path(src) / "__pycache__"


def _sources_digest() -> str:
    here = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for p in [*sorted(here.glob("*.py")), here.parent / "model" / "codes.py"]:
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:32]


def drop_stale_cache() -> bool:
    """Drop this package's cached kernels when any kernel source (or mmd.model.codes) differs
    from the sources they were compiled from; returns True when it dropped them.

    numba checks a cached kernel against its own file only: a kernel that calls (and so
    inlines) a kernel of another module, or reads a constant of mmd.model.codes, would
    otherwise keep running the old code after an upgrade. A digest of the sources is kept
    beside the cache; any difference clears it (the kernels compile again, once). A cache
    that cannot be written (a read-only image) is left alone.
    """
    d = _cache_dir()
    stamp = d / "mmd_sources.digest"
    digest = _sources_digest()
    try:
        if stamp.read_text() == digest:
            return False
    except OSError:
        pass
    try:
        for f in d.glob("*.nb[ic]"):
            f.unlink(missing_ok=True)
        d.mkdir(parents=True, exist_ok=True)
        tmp = d / f"mmd_sources.digest.{os.getpid()}"
        tmp.write_text(digest)
        tmp.replace(stamp)
    except OSError:
        return False
    return True


drop_stale_cache()
