"""`mmd convert KIND IN... --out OUT`: argument checks and dispatch to the converters.

Turns a converter's ValueError/OSError into a one-line ConfigError; converts nothing itself.
"""

from __future__ import annotations

from pathlib import Path

from mmd.errors import ConfigError
from mmd.feeds.convert.binance_usdm import convert_binance_usdm
from mmd.feeds.convert.cryptofeed import convert_cryptofeed
from mmd.feeds.convert.hftbacktest import convert_hftbacktest

CONVERT_KINDS = ("binance-usdm", "cryptofeed", "hftbacktest")


def run_convert(kind: str, inputs: list[str], out: str, progress: bool = True) -> list[Path]:
    """`mmd convert KIND IN... --out OUT`: check the arguments, then convert.

    Args:
        kind: "binance-usdm", "cryptofeed" or "hftbacktest".
        inputs: input files (binance-usdm: the files of one recording, in order;
            cryptofeed: exactly one capture; hftbacktest: our recordings of one symbol,
            in order).
        out: output file or directory (binance-usdm), output directory (cryptofeed),
            output .npz file (hftbacktest).
        progress: show progress bars on a TTY.

    Returns:
        The written recordings (a ConvertResult; hftbacktest: a one-element list, the .npz).

    Raises:
        ConfigError: unknown kind, missing or unreadable input, or input that does not convert
            (the message is one line).
    """
    if kind not in CONVERT_KINDS:
        raise ConfigError(f"convert: unknown kind {kind!r} (expected one of {CONVERT_KINDS})")
    if not inputs:
        raise ConfigError(f"convert {kind}: no input files given")
    paths = [Path(p) for p in inputs]
    for p in paths:
        if not p.is_file():
            raise ConfigError(f"convert {kind}: {p}: no such file")
    if kind == "cryptofeed" and len(paths) != 1:
        raise ConfigError(f"convert cryptofeed: expected one input file, got {len(paths)}")
    try:
        if kind == "binance-usdm":
            return convert_binance_usdm(paths, out, progress=progress)
        if kind == "hftbacktest":
            return [convert_hftbacktest(paths, Path(out), progress=progress)]
        return convert_cryptofeed(paths[0], out, progress=progress)
    except (ValueError, OSError) as exc:
        message = " ".join(str(exc).split())
        raise ConfigError(f"convert {kind}: {message}") from exc
