"""CLI entry: `mmd <command>`. Parse args -> load config -> configure logs -> run.

Exit codes: 0 ok, 2 bad config or arguments, or a state dir this run cannot use (one line naming
the problem and how to proceed, no traceback), 1 crash.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Sequence

from mmd.cli import EXIT_CONFIG, EXIT_CRASH, EXIT_OK
from mmd.cli.commands import dispatch
from mmd.cli.parser import build_parser
from mmd.errors import ConfigError, StateError


def _config_error(exc: BaseException) -> ConfigError | StateError | None:
    if isinstance(exc, ConfigError | StateError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _config_error(inner)
            if found is not None:
                return found
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit code (0 ok, 2 config/arguments, 1 crash)."""
    args = build_parser().parse_args(argv)
    try:
        return dispatch(args)
    except KeyboardInterrupt:
        return EXIT_OK
    except BaseException as exc:  # the outermost handler maps errors to exit codes
        if isinstance(exc, SystemExit):
            raise
        cfg_err = _config_error(exc)
        if cfg_err is not None:
            kind = "state" if isinstance(cfg_err, StateError) else "config"
            sys.stderr.write(f"mmd: {kind} error: {cfg_err}\n")
            return EXIT_CONFIG
        traceback.print_exception(exc)
        return EXIT_CRASH


if __name__ == "__main__":
    sys.exit(main())
