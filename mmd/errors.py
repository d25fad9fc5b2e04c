"""Exception hierarchy, one class per reaction the daemon needs.

ConfigError -> exit 2; TransientError -> retry with capped jittered backoff;
FeedDesync -> pull quotes and resync that symbol only; InvariantViolation -> crash (exit 1);
StateError -> exit 2 with how to recover (another state dir, or move it aside).
"""


class MmdError(Exception):
    """Base of every error mmd raises on purpose."""


class ConfigError(MmdError):
    """Bad config or arguments. The message is one line naming the key; the process exits 2."""


class TransientError(MmdError):
    """Timeouts, HTTP 5xx/429/403, retryable retCodes, closed sockets: retry with backoff."""


class PermanentRequestError(MmdError):
    """A request the venue will never accept (retCode 10001/10017/10029): do not retry."""


class FeedDesync(MmdError):
    """An update-id gap or a crossed book: resync that symbol only."""

    def __init__(self, symbol: str, reason: str) -> None:
        super().__init__(f"{symbol}: {reason}")
        self.symbol = symbol
        self.reason = reason


class InvariantViolation(MmdError):
    """A bug (NaN from a kernel, negative size, illegal transition): crash, exit 1."""


class StateError(MmdError):
    """The state dir holds a ledger this run must not use (a bad row, another run's identity,
    a replay that disagrees with it). One line saying which and how to proceed; exit 2."""
