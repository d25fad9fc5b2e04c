"""RingBuffer: a preallocated struct-of-arrays ring of fixed capacity (one numpy array per field).

Memory is allocated once, so `nbytes` never changes however much is appended; the oldest rows
are overwritten. Reads return chronological copies. It holds no trading logic.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

# one ring column: int64 or float64 by field (the dtype the ring was built with)
Column = npt.NDArray[Any]


class RingBuffer:
    """Fixed-capacity ring of rows, stored as one preallocated numpy array per field.

    Args:
        capacity: rows kept (>= 1); older rows are overwritten.
        fields: field name -> numpy dtype (or a type numpy accepts as one), e.g.
            `{"ts_ns": np.int64, "mid_ticks": np.float64}`.
    """

    __slots__ = ("_capacity", "_data", "_total")

    def __init__(self, capacity: int, fields: Mapping[str, npt.DTypeLike]) -> None:
        if capacity < 1:
            raise ValueError(f"RingBuffer capacity must be >= 1, got {capacity}")
        if not fields:
            raise ValueError("RingBuffer needs at least one field")
        self._capacity = capacity
        self._data: dict[str, Column] = {
            name: np.zeros(capacity, dtype=np.dtype(dtype)) for name, dtype in fields.items()
        }
        self._total = 0

    @property
    def capacity(self) -> int:
        """Rows kept."""
        return self._capacity

    @property
    def fields(self) -> dict[str, np.dtype[Any]]:
        """Field name -> dtype."""
        return {name: arr.dtype for name, arr in self._data.items()}

    @property
    def total(self) -> int:
        """Rows ever appended since construction or the last clear()."""
        return self._total

    @property
    def nbytes(self) -> int:
        """Bytes held by the field arrays (fixed for the buffer's life)."""
        return sum(int(arr.nbytes) for arr in self._data.values())

    def column(self, field: str) -> Column:
        """The storage array of one field itself (no copy), for kernels: the row appended as
        the `g`-th (0-based, g < total) is at slot g % capacity while it is held.

        Raises:
            KeyError: unknown field.
        """
        return self._data[field]

    def count_written(self, n: int = 1) -> None:
        """Count n rows a kernel wrote in place through `column()`, at the slots the next n
        appends would have used (total % capacity onwards)."""
        self._total += n

    def __len__(self) -> int:
        return min(self._total, self._capacity)

    def _check_names(self, given: dict[str, Any]) -> None:
        if given.keys() != self._data.keys():
            missing = sorted(self._data.keys() - given.keys())
            unknown = sorted(given.keys() - self._data.keys())
            raise ValueError(f"RingBuffer fields: missing {missing}, unknown {unknown}")

    def append(self, **values: Any) -> None:
        """Append one row; every field must be given exactly once.

        Values are cast to the fields' dtypes before anything is written, so a value the dtype
        cannot hold (an int beyond int64) leaves the ring untouched: no torn row.

        Raises:
            ValueError: a field is missing or unknown, or a value does not fit its dtype.
        """
        self._check_names(values)
        row = self._cast(values)
        i = self._total % self._capacity
        for name, value in row:
            self._data[name][i] = value
        self._total += 1

    def _cast(self, values: dict[str, Any]) -> list[tuple[str, Any]]:
        data = self._data
        try:
            return [(name, data[name].dtype.type(value)) for name, value in values.items()]
        except (OverflowError, TypeError, ValueError) as exc:
            raise ValueError(f"RingBuffer row does not fit its dtypes: {exc}") from None

    def replace_last(self, **values: Any) -> None:
        """Overwrite the newest row in place (an upsert of the latest record); every field given.

        Raises:
            ValueError: a field is missing or unknown, or a value does not fit its dtype.
            IndexError: the buffer is empty.
        """
        self._check_names(values)
        if self._total == 0:
            raise IndexError("replace_last on an empty RingBuffer")
        row = self._cast(values)
        i = (self._total - 1) % self._capacity
        for name, value in row:
            self._data[name][i] = value

    def extend(self, **arrays: npt.ArrayLike) -> None:
        """Append many rows at once (vectorised): one equal-length 1-D array per field.

        When more rows than the capacity are given, only the newest `capacity` are stored,
        but `total` counts them all.

        Raises:
            ValueError: a field is missing or unknown, or the arrays are not 1-D of equal length.
            TypeError: an array cannot be cast safely to its field's dtype (e.g. float -> int).
        """
        self._check_names(arrays)
        cols: dict[str, Column] = {}
        m = -1
        for name, values in arrays.items():
            col = np.asarray(values)
            if col.ndim != 1:
                raise ValueError(f"RingBuffer.extend: {name} must be 1-D, got shape {col.shape}")
            if m not in (-1, col.shape[0]):
                raise ValueError("RingBuffer.extend: arrays differ in length")
            m = col.shape[0]
            dtype = self._data[name].dtype
            if col.size and not np.can_cast(col.dtype, dtype, casting="same_kind"):
                raise TypeError(f"RingBuffer.extend: {name} is {col.dtype}, field is {dtype}")
            cols[name] = col
        if m <= 0:
            return
        cap = self._capacity
        take = min(m, cap)
        end_total = self._total + m
        # row with global index g lives at slot g % cap; write the newest `take` rows
        start = (end_total - take) % cap
        first = min(take, cap - start)
        for name, col in cols.items():
            dst = self._data[name]
            src = col[m - take :]
            dst[start : start + first] = src[:first]
            if first < take:
                dst[: take - first] = src[first:]
        self._total = end_total

    def _tail(self, arr: Column, k: int) -> Column:
        # the newest k rows of one field, oldest first, as a copy
        end = self._total % self._capacity
        start = end - k
        if start >= 0:
            return arr[start:end].copy()
        return np.concatenate((arr[start:], arr[:end]))

    def last(self, n: int) -> dict[str, Column]:
        """The newest n rows (fewer if fewer are held), oldest first, as copies per field."""
        if n < 0:
            raise ValueError(f"last(n) needs n >= 0, got {n}")
        k = min(n, len(self))
        return {name: self._tail(arr, k) for name, arr in self._data.items()}

    def since(self, cursor: int) -> dict[str, Column]:
        """The rows appended after the buffer's `total` was `cursor`, oldest first (copies);
        at most the rows still held. Readers keep `total` as their cursor."""
        return self.last(max(0, self._total - cursor))

    def latest(self, field: str) -> Any:
        """The newest value of one field as a Python scalar.

        Raises:
            KeyError: unknown field.
            IndexError: the buffer is empty.
        """
        arr = self._data[field]
        if self._total == 0:
            raise IndexError("latest on an empty RingBuffer")
        return arr[(self._total - 1) % self._capacity].item()

    def array(self, field: str) -> Column:
        """Every held value of one field, oldest first, as a copy.

        Raises:
            KeyError: unknown field.
        """
        return self._tail(self._data[field], len(self))

    def clear(self) -> None:
        """Forget every row (the arrays are kept; nbytes is unchanged)."""
        self._total = 0
