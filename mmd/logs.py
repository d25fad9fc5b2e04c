"""structlog set-up: console renderer on a TTY, JSON lines on stdout otherwise.

Events are snake_case past tense (`feed_resynced`); `component` and `symbol` are bound by callers.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


# `scheme://user:password@host`: the user info of any URL (a venue URL may carry credentials)
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/?#@\s]*@")


def redact_url(text: str) -> str:
    """text with the user info of every URL in it replaced by `***` (`ws://***@host/...`)."""
    return _USERINFO.sub(r"\1***@", text) if "@" in text else text


def _redact_values(
    _logger: Any, _name: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    # every string value of every log line, exception text included: no credential in a URL
    # reaches the output, whoever logs it
    for key, value in event.items():
        if isinstance(value, str) and "@" in value:
            event[key] = redact_url(value)
    return event


def configure_logs(level: str = "info", fmt: str = "auto", *, cache: bool = True) -> None:
    """Configure structlog once per process.

    Args:
        level: debug, info, warning or error.
        fmt: auto (console on a TTY, JSON otherwise), json or console.
        cache: cache loggers on first use (production); tests pass False.
    """
    use_console = fmt == "console" or (fmt == "auto" and sys.stdout.isatty())
    renderer: structlog.typing.Processor = (
        structlog.dev.ConsoleRenderer() if use_console else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            _redact_values,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stdout),
        cache_logger_on_first_use=cache,
    )


def get_logger(component: str, **bound: object) -> structlog.typing.FilteringBoundLogger:
    """A logger with `component` (and any other keys) bound."""
    return structlog.get_logger().bind(component=component, **bound)  # type: ignore[no-any-return]
