"""Walk-forward folds by time over the data the recordings cover.

Pure: receive-stamp spans in, windows out. The covered time (the union of the recordings'
[first, last] receive stamps; gaps between recordings of different days are left out) is cut
into K+1 consecutive folds of equal covered length. Folds 0..K-1 are the training folds a trial
is scored on; fold K, later than all of them, is the out-of-sample fold the best trials are
scored on afterwards. A fold is a list of windows [start_ns, end_ns) (one per covered interval
it touches). Every fold but the first loses its first `purge_ns` (the purge gap), so no window
starts right where the previous fold ended.
"""

from __future__ import annotations

from dataclasses import dataclass

Window = tuple[int, int]


@dataclass(frozen=True)
class Splits:
    """train: K folds (each a list of windows), oldest first; test: the last fold."""

    train: list[list[Window]]
    test: list[Window]


def covered(spans: list[Window]) -> list[Window]:
    """The union of [start, end) spans as sorted, disjoint intervals."""
    out: list[list[int]] = []
    for a, b in sorted(spans):
        if b <= a:
            continue
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


def walk_forward(spans: list[Window], k: int, purge_ns: int = 0) -> Splits:
    """K training folds and one out-of-sample fold over the covered time of spans.

    Args:
        spans: [first, last + 1) receive stamps of each recording, ns.
        k: number of training folds (>= 1); K + 1 folds in all.
        purge_ns: dropped at the start of every fold after the first.

    Raises:
        ValueError: k < 1, nothing covered, or a fold left empty by the purge.
    """
    if k < 1:
        raise ValueError("splits must be >= 1")
    ivs = covered(spans)
    total = sum(b - a for a, b in ivs)
    if total <= 0:
        raise ValueError("the recordings cover no time")
    n = k + 1
    # fold boundaries in covered time: cut i at i*total//n (integer ns, exact)
    cuts = [i * total // n for i in range(n + 1)]
    folds: list[list[Window]] = []
    for i in range(n):
        lo, hi = cuts[i] + (purge_ns if i > 0 else 0), cuts[i + 1]
        if hi <= lo:
            raise ValueError(f"fold {i} is empty after the purge gap; fewer splits or less purge")
        folds.append(_slice(ivs, lo, hi))
    return Splits(train=folds[:-1], test=folds[-1])


def _slice(ivs: list[Window], lo: int, hi: int) -> list[Window]:
    """The windows of covered time [lo, hi) (offsets into the concatenated intervals)."""
    out: list[Window] = []
    base = 0
    for a, b in ivs:
        length = b - a
        s, e = max(lo, base), min(hi, base + length)
        if s < e:
            out.append((a + s - base, a + e - base))
        base += length
    return out
