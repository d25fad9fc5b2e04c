"""mmd.market.ring.RingBuffer: wrap-around, vectorised extend, fixed memory, list-model property."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmd.market.ring import RingBuffer

FIELDS = {"ts_ns": np.int64, "mid_ticks": np.float64}


def ring(capacity: int = 4) -> RingBuffer:
    return RingBuffer(capacity, FIELDS)


def test_ring_new_is_empty() -> None:
    r = ring()
    assert len(r) == 0
    assert r.total == 0
    assert r.array("ts_ns").tolist() == []
    assert r.last(3)["mid_ticks"].tolist() == []
    with pytest.raises(IndexError):
        r.latest("ts_ns")


def test_ring_bad_construction_raises() -> None:
    with pytest.raises(ValueError, match="capacity"):
        RingBuffer(0, FIELDS)
    with pytest.raises(ValueError, match="field"):
        RingBuffer(3, {})


def test_ring_fields_have_requested_dtypes() -> None:
    r = ring()
    assert r.fields == {"ts_ns": np.dtype(np.int64), "mid_ticks": np.dtype(np.float64)}
    assert r.capacity == 4


def test_ring_append_below_capacity_keeps_order() -> None:
    r = ring()
    for i in range(3):
        r.append(ts_ns=i, mid_ticks=i + 0.5)
    assert len(r) == 3
    assert r.array("ts_ns").tolist() == [0, 1, 2]
    assert r.latest("mid_ticks") == 2.5
    assert isinstance(r.latest("ts_ns"), int)


def test_ring_append_past_capacity_wraps_chronologically() -> None:
    r = ring()
    for i in range(10):
        r.append(ts_ns=i, mid_ticks=float(i))
    assert len(r) == 4
    assert r.total == 10
    assert r.array("ts_ns").tolist() == [6, 7, 8, 9]
    assert {k: v.tolist() for k, v in r.last(2).items()} == {
        "ts_ns": [8, 9],
        "mid_ticks": [8.0, 9.0],
    }
    assert r.last(99)["ts_ns"].tolist() == [6, 7, 8, 9]
    assert r.latest("ts_ns") == 9


def test_ring_append_exactly_capacity_reads_in_order() -> None:
    r = ring()
    for i in range(8):  # the head is back at slot 0
        r.append(ts_ns=i, mid_ticks=0.0)
    assert r.array("ts_ns").tolist() == [4, 5, 6, 7]
    assert r.last(3)["ts_ns"].tolist() == [5, 6, 7]


def test_ring_append_missing_or_unknown_field_raises() -> None:
    r = ring()
    with pytest.raises(ValueError, match="missing"):
        r.append(ts_ns=1)
    with pytest.raises(ValueError, match="unknown"):
        r.append(ts_ns=1, mid_ticks=1.0, extra=3)
    assert r.total == 0


def test_ring_extend_across_end_wraps() -> None:
    r = ring(5)
    r.extend(ts_ns=[0, 1, 2], mid_ticks=[0.0, 1.0, 2.0])
    r.extend(ts_ns=np.arange(3, 7), mid_ticks=np.arange(3, 7, dtype=np.float64))
    assert r.total == 7
    assert r.array("ts_ns").tolist() == [2, 3, 4, 5, 6]
    assert r.array("mid_ticks").tolist() == [2.0, 3.0, 4.0, 5.0, 6.0]


def test_ring_extend_longer_than_capacity_keeps_newest() -> None:
    r = ring(4)
    r.append(ts_ns=-1, mid_ticks=-1.0)
    r.extend(ts_ns=np.arange(11), mid_ticks=np.arange(11) * 0.5)
    assert r.total == 12
    assert len(r) == 4
    assert r.array("ts_ns").tolist() == [7, 8, 9, 10]
    assert r.array("mid_ticks").tolist() == [3.5, 4.0, 4.5, 5.0]
    r.append(ts_ns=11, mid_ticks=5.5)
    assert r.array("ts_ns").tolist() == [8, 9, 10, 11]


def test_ring_extend_empty_is_noop() -> None:
    r = ring()
    r.extend(ts_ns=[], mid_ticks=[])
    assert r.total == 0


def test_ring_extend_bad_arrays_raise_without_writing() -> None:
    r = ring()
    with pytest.raises(ValueError, match="length"):
        r.extend(ts_ns=[1, 2], mid_ticks=[1.0])
    with pytest.raises(ValueError, match="1-D"):
        r.extend(ts_ns=[[1, 2]], mid_ticks=[[1.0, 2.0]])
    with pytest.raises(TypeError, match="ts_ns"):
        r.extend(ts_ns=[1.5], mid_ticks=[1.0])
    with pytest.raises(ValueError, match="missing"):
        r.extend(ts_ns=[1])
    assert r.total == 0


def test_ring_ten_times_capacity_appends_nbytes_constant() -> None:
    r = ring(64)
    before = r.nbytes
    assert before == 64 * 8 * 2
    for i in range(640):
        r.append(ts_ns=i, mid_ticks=float(i))
    r.extend(ts_ns=np.arange(640), mid_ticks=np.zeros(640))
    assert r.nbytes == before
    assert len(r) == 64


def test_ring_reads_are_copies() -> None:
    r = ring()
    r.extend(ts_ns=[1, 2], mid_ticks=[1.0, 2.0])
    r.array("ts_ns")[0] = 99
    r.last(2)["ts_ns"][0] = 99
    assert r.array("ts_ns").tolist() == [1, 2]


def test_ring_last_negative_raises() -> None:
    with pytest.raises(ValueError, match="n >= 0"):
        ring().last(-1)


def test_ring_replace_last_overwrites_newest_row() -> None:
    r = ring(3)
    with pytest.raises(IndexError):
        r.replace_last(ts_ns=1, mid_ticks=1.0)
    for i in range(5):
        r.append(ts_ns=i, mid_ticks=float(i))
    r.replace_last(ts_ns=4, mid_ticks=40.0)
    assert r.array("mid_ticks").tolist() == [2.0, 3.0, 40.0]
    assert r.total == 5


def test_ring_clear_forgets_rows_keeps_memory() -> None:
    r = ring()
    r.extend(ts_ns=[1, 2, 3], mid_ticks=[1.0, 2.0, 3.0])
    nbytes = r.nbytes
    r.clear()
    assert (len(r), r.total, r.nbytes) == (0, 0, nbytes)
    r.append(ts_ns=7, mid_ticks=7.0)
    assert r.array("ts_ns").tolist() == [7]


ops = st.lists(
    st.one_of(
        st.integers(min_value=0, max_value=1000).map(lambda v: ("append", [v])),
        st.lists(st.integers(min_value=0, max_value=1000), max_size=25).map(
            lambda vs: ("extend", vs)
        ),
    ),
    max_size=30,
)


@settings(max_examples=200, deadline=None)
@given(capacity=st.integers(min_value=1, max_value=9), script=ops, n=st.integers(0, 12))
def test_ring_random_appends_and_extends_match_list_model(
    capacity: int, script: list[tuple[str, list[int]]], n: int
) -> None:
    r = RingBuffer(capacity, {"v": np.int64, "w": np.float64})
    model: list[int] = []
    for op, values in script:
        if op == "append":
            r.append(v=values[0], w=values[0] / 2)
        else:
            r.extend(v=np.array(values, np.int64), w=np.array(values, np.float64) / 2)
        model.extend(values)
    kept = model[-capacity:] if model else []
    assert r.total == len(model)
    assert len(r) == len(kept)
    assert r.array("v").tolist() == kept
    assert r.last(n)["v"].tolist() == (kept[-n:] if n else [])
    assert r.last(n)["w"].tolist() == [x / 2 for x in (kept[-n:] if n else [])]
    if kept:
        assert r.latest("v") == kept[-1]


def test_ring_since_cursor_returns_rows_appended_after_it_bounded_by_capacity() -> None:
    ring = RingBuffer(4, {"x": np.int64})
    for v in range(3):
        ring.append(x=v)
    cursor = ring.total  # 3
    assert ring.since(cursor)["x"].tolist() == []
    ring.append(x=3)
    ring.append(x=4)
    assert ring.since(cursor)["x"].tolist() == [3, 4]
    for v in range(5, 12):
        ring.append(x=v)
    # 9 rows appended since the cursor, only the last 4 are still held
    assert ring.since(cursor)["x"].tolist() == [8, 9, 10, 11]
    assert ring.since(0)["x"].tolist() == [8, 9, 10, 11]


def test_ring_value_beyond_int64_is_refused_without_a_torn_row() -> None:
    ring = RingBuffer(2, {"ts_ns": np.int64, "px": np.float64})
    ring.append(ts_ns=1, px=1.5)
    ring.append(ts_ns=2, px=2.5)
    with pytest.raises(ValueError):
        ring.append(ts_ns=2**63, px=9.0)  # the oldest row would be overwritten
    assert ring.array("ts_ns").tolist() == [1, 2] and ring.array("px").tolist() == [1.5, 2.5]
    with pytest.raises(ValueError):
        ring.replace_last(ts_ns=-(2**63) - 1, px=9.0)
    assert ring.total == 2 and ring.latest("px") == 2.5
