"""The kernel cache is dropped when the kernel sources change (numba alone checks a cached
kernel against its own file only, so a kernel inlining another module's would keep old code)."""

from __future__ import annotations

from pathlib import Path

import pytest
from numba.core import config

import mmd.kernels as mk


def test_cached_kernels_dropped_when_the_sources_differ(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(config, "CACHE_DIR", str(tmp_path))
    d = mk._cache_dir()
    assert d.parent == tmp_path and d.name.startswith("kernels_")
    d.mkdir()
    entry, data, other = (
        d / "rl.rl_decide-216.py311.nbi",
        d / "rl.rl_decide-216.py311.1.nbc",
        d / "keep.txt",
    )
    for f in (entry, data, other):
        f.write_text("x")
    # no stamp yet: an old cache of unknown sources is dropped, the stamp written
    assert mk.drop_stale_cache()
    assert not entry.exists() and not data.exists() and other.exists()
    assert (d / "mmd_sources.digest").read_text() == mk._sources_digest()
    # same sources: what was compiled since is kept
    entry.write_text("x")
    assert not mk.drop_stale_cache()
    assert entry.exists()
    # another source digest (an upgrade): dropped again
    (d / "mmd_sources.digest").write_text("0" * 32)
    assert mk.drop_stale_cache()
    assert not entry.exists()
