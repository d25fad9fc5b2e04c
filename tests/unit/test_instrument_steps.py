"""Exact venue-string -> ticks/lots conversion: count_steps (the rule) and count_steps_many (the
fast list form the book path uses) give the same answer or both refuse, for any input."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmd.model.instrument import Instrument, count_steps, count_steps_many, step_units

STEPS = ["0.1", "0.10", "0.01", "0.001", "1", "5", "0.5", "0.25", "0.0001", "0.00000001", "10"]


def _one(text: object, step: str) -> int | None:
    try:
        return count_steps(text, step)  # type: ignore[arg-type]
    except ValueError:
        return None


def _many(texts: list[object], step: str) -> list[int] | None:
    try:
        return count_steps_many(texts, step)  # type: ignore[arg-type]
    except ValueError:
        return None


DECIMALS = st.one_of(
    st.from_regex(r"[0-9]{1,16}(\.[0-9]{1,12})?", fullmatch=True),
    st.decimals(min_value=0, max_value=10**12, places=4).map(str),
    st.sampled_from(
        [
            "1e5",
            " 1",
            "1 ",
            "-1",
            "+1",
            "NaN",
            "inf",
            "1_000",
            "0x10",
            "",
            ".5",
            "5.",
            "1,5",
            "100.00000000000000000001",
            "9" * 20,
            "9" * 21,
            "1000000000000000",
            "1000000000000001",
            "\u0661",
        ]
    ),
)


@settings(max_examples=600, deadline=None)
@given(texts=st.lists(DECIMALS, min_size=1, max_size=5), step=st.sampled_from(STEPS))
def test_count_steps_many_agrees_with_count_steps(texts: list[str], step: str) -> None:
    each = [_one(t, step) for t in texts]
    many = _many(texts, step)
    if None in each:
        assert many is None, (texts, step, each)
    else:
        assert many == each, (texts, step)


@pytest.mark.parametrize(
    ("text", "step", "want"),
    [
        # hand arithmetic: value / step
        ("65114.2", "0.1", 651142),
        ("65114.20", "0.10", 651142),
        ("0.0005", "0.0001", 5),
        ("100.5", "0.5", 201),
        ("100.75", "0.25", 403),
        ("20", "5", 4),
        ("0", "0.001", 0),
        ("1000000000000", "0.001", 10**15),  # the bound: 10**12 * 10**3 == MAX_SCALED
    ],
)
def test_count_steps_exact_values(text: str, step: str, want: int) -> None:
    assert count_steps(text, step) == want
    assert count_steps_many([text, text], step) == [want, want]


@pytest.mark.parametrize(
    ("text", "step"),
    [
        ("100.05", "0.1"),
        ("0.0005", "0.001"),
        ("100.3", "0.5"),
        ("7", "5"),
        ("1e2", "0.1"),
        ("-1", "1"),
        ("1000000000000.001", "0.001"),
        ("NaN", "0.1"),
        (" 1", "1"),
        (1.5, "0.1"),
    ],
)
def test_count_steps_refuses_off_grid_or_malformed(text: object, step: str) -> None:
    with pytest.raises(ValueError):
        count_steps(text, step)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        count_steps_many([text], step)  # type: ignore[list-item]


@pytest.mark.parametrize(
    "step", ["0", "0.000", "-0.1", "NaN", "1e-1", "", "0." + "0" * 18 + "1", "1000000000"]
)
def test_step_units_refuses_unusable_steps(step: str) -> None:
    with pytest.raises(ValueError):
        step_units(step)


def test_levels_to_arrays_refuses_a_part_lot_instead_of_rounding_it_away() -> None:
    inst = Instrument(symbol="BTCUSDT", tick_size="0.1", lot_size="0.001")
    px, qty = inst.levels_to_arrays([["100.0", "1.5"], ["99.9", "0"]])
    assert px.tolist() == [1000, 999] and qty.tolist() == [1500, 0]
    with pytest.raises(ValueError):
        inst.levels_to_arrays([["100.0", "0.0005"]])  # used to become 0 lots: a deleted level
    with pytest.raises(ValueError):
        inst.levels_to_arrays([["0", "1"]])  # a zero price
