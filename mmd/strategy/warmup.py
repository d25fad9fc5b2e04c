"""WarmupGate: when quoting may start, so warm-up is bounded (never "waiting for trades" for ever).

Pure: the caller passes the time and the facts (book synced, calibrated); it reads no clock
and does no I/O. The state machine is `mmd.kernels.strategy.compute_gate_state`.
"""

from __future__ import annotations

from mmd.kernels.strategy import GATE_CALIBRATED, GATE_FALLBACK, compute_gate_state

WAITING = "waiting"
CALIBRATED = "calibrated"
FALLBACK = "fallback"
_STATES = {GATE_CALIBRATED: CALIBRATED, GATE_FALLBACK: FALLBACK}


class WarmupGate:
    """Bounded warm-up: quote from calibrated parameters, or from the fallbacks after warmup_s.

    States, re-derived at every `update`:
        "waiting": the book is not synced, or it is and warmup_s has not elapsed since
            start_ns without a good fit. Do not quote.
        "calibrated": the book is synced and a good fit exists. Quote.
        "fallback": the book is synced, warmup_s has elapsed and there is no good fit yet.
            Quote from the config's fallback parameters rather than wait for ever
            (Hummingbot's "no trades tick" hang, issues #5771 and #5171).
    A book that drops out of sync sends the gate back to "waiting" until it is synced again;
    once warmup_s has elapsed it never has to be waited out again.

    Args:
        warmup_s: the longest wait for a first good fit, in seconds (>= 0).
        start_ns: when warm-up began (process start), in ns.
    """

    __slots__ = ("_deadline_ns", "_state", "start_ns", "warmup_s")

    def __init__(self, warmup_s: float, start_ns: int) -> None:
        if not warmup_s >= 0:
            raise ValueError(f"warmup_s must be >= 0, got {warmup_s}")
        self.warmup_s = warmup_s
        self.start_ns = start_ns
        self._deadline_ns = start_ns + round(warmup_s * 1e9)
        self._state = WAITING

    def update(self, now_ns: int, book_synced: bool, calibrated: bool) -> str:
        """Re-derive the state from the current facts.

        Args:
            now_ns: current time in ns (same clock as start_ns).
            book_synced: the symbol's book is synced (and not stale).
            calibrated: the calibrator holds a good fit (`IntensityCalibrator.calibrated`).

        Returns:
            The new state: "waiting", "calibrated" or "fallback".
        """
        code = compute_gate_state(now_ns, self._deadline_ns, bool(book_synced), bool(calibrated))
        state = _STATES.get(code, WAITING)
        self._state = state
        return state

    def set_code(self, code: int) -> str:
        """Take the state a compiled decision derived (`compute_gate_state`'s code)."""
        state = _STATES.get(code, WAITING)
        self._state = state
        return state

    @property
    def deadline_ns(self) -> int:
        """When the fallbacks are allowed (start_ns + warmup_s), ns."""
        return self._deadline_ns

    @property
    def state(self) -> str:
        """The state the latest `update` returned ("waiting" before the first)."""
        return self._state

    @property
    def ready(self) -> bool:
        """True when quoting may go ahead ("calibrated" or "fallback")."""
        return self._state != WAITING
