"""structlog set-up: console renderer on a TTY, JSON lines on stdout otherwise.

Events are snake_case past tense (`feed_resynced`); `component` and `symbol` are bound by callers.
"""

from __future__ import annotations

import logging
import sys

import structlog

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
           "error": logging.ERROR}


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
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stdout),
        cache_logger_on_first_use=cache,
    )


def get_logger(component: str, **bound: object) -> structlog.typing.FilteringBoundLogger:
    """A logger with `component` (and any other keys) bound."""
    return structlog.get_logger().bind(component=component, **bound)  # type: ignore[no-any-return]
