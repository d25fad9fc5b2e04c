"""The `mmd` argument parser: every command of PRODUCT.md and its options. Parses only: a bad
argument is one line on stderr and exit 2; nothing here loads a config or runs a command.
"""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

from mmd.cli import EXIT_CONFIG


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad argument as one line and exits 2."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(EXIT_CONFIG)


def _positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if v <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0: {text!r}")
    return v


def build_parser() -> argparse.ArgumentParser:
    """The `mmd` argument parser (every command of PRODUCT.md)."""
    p = _Parser(prog="mmd", description="Market-making daemon: paper trading on Bybit V5 data.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def with_config(sp: argparse.ArgumentParser) -> None:
        sp.add_argument(
            "-c",
            "--config",
            default=None,
            help="config file (default: ./config.toml if present, else built-in)",
        )
        sp.add_argument(
            "--set",
            action="append",
            default=[],
            metavar="SECTION.KEY=VALUE",
            help="override one config key (repeatable; wins over the file and "
            "MMD_* variables), e.g. --set strategy.gamma=0.2",
        )

    r = sub.add_parser("run", help="run the daemon")
    with_config(r)
    r.add_argument(
        "--feed", choices=["bybit", "synthetic", "replay"], help="override [feed] source"
    )

    cc = sub.add_parser("check-config", help="validate and print the effective config")
    with_config(cc)

    rec = sub.add_parser("record", help="record raw frames from the configured feed")
    with_config(rec)
    rec.add_argument("--out", required=True, help="output directory")
    rec.add_argument(
        "--duration",
        type=_positive_float,
        default=None,
        help="seconds to record (default: until SIGINT/SIGTERM)",
    )
    rec.add_argument("--feed", choices=["bybit", "synthetic"], help="override [feed] source")

    sy = sub.add_parser(
        "synth",
        help="write a synthetic session as recordings + truth, in simulated time (no waiting)",
    )
    with_config(sy)
    sy.add_argument("--out", required=True, help="output directory")
    sy.add_argument(
        "--duration", type=_positive_float, required=True, help="simulated seconds to write"
    )
    sy.add_argument(
        "--seed", type=int, default=None, help="shorthand for --set feed.synthetic.seed=N"
    )
    sy.add_argument(
        "--start",
        default=None,
        metavar="ISO_UTC",
        help="time of the first frame, e.g. 2026-01-01T00:00:00Z "
        "(default: that one, so a command always writes the same bytes)",
    )

    sv = sub.add_parser("serve-venue", help="serve a recording over the Bybit V5 public protocol")
    sv.add_argument("data", nargs="+", help="recordings (files or directories)")
    sv.add_argument("--host", default="127.0.0.1")
    sv.add_argument("--port", type=int, default=8800)
    sv.add_argument(
        "--speed", type=_positive_float, default=1.0, help="replay speed (1 = recorded pace)"
    )
    sv.add_argument("--faults", default="", help="e.g. disconnect:500,gap:700,http5xx:5")
    sv.add_argument(
        "--keep-timestamps",
        action="store_true",
        help="serve recorded timestamps instead of re-basing them on now",
    )

    bt = sub.add_parser("backtest", help="the strategy and paper exchange over recordings")
    with_config(bt)
    bt.add_argument(
        "data",
        nargs="*",
        help="recordings (files or directories); with --config-from, default: "
        "the recordings the summary names (their sha256 must match)",
    )
    bt.add_argument(
        "--config-from",
        default=None,
        metavar="SUMMARY_JSON",
        help="use the config a previous `--report` recorded in its summary.json "
        "instead of -c (MMD_* and --set still apply on top)",
    )
    bt.add_argument(
        "--strategy",
        choices=["as", "glft", "ml", "deep"],
        default=None,
        help="quote model (default: [strategy] model)",
    )
    bt.add_argument("--report", default=None, help="write summary.json and PNG plots here")
    bt.add_argument(
        "--fills",
        default=None,
        metavar="CSV",
        help="write every fill with its markouts to this CSV file",
    )
    bt.add_argument("--no-progress", action="store_true", help="no progress bar")
    bt.add_argument(
        "--start-ns",
        type=int,
        default=None,
        metavar="NS",
        help="trade only from this receive stamp (ns; earlier frames only build "
        "the book; the strategy starts fresh here)",
    )
    bt.add_argument(
        "--end-ns", type=int, default=None, metavar="NS", help="stop before this receive stamp (ns)"
    )
    bt.add_argument(
        "--engine",
        choices=["fast", "python"],
        default="fast",
        help="fast: one jitted loop over the event cache (default); python: the "
        "frame-by-frame reference driver (same results)",
    )

    tu = sub.add_parser(
        "tune",
        help="search strategy parameters over recordings (walk-forward; needs the `train` extra)",
    )
    with_config(tu)
    from mmd.tune.cli import add_arguments as tune_arguments

    tune_arguments(tu)

    rk = sub.add_parser("risk", help="inspect or clear the kill switch kept in the ledger")
    with_config(rk)
    rk.add_argument("action", choices=["status", "reset"])
    rk.add_argument(
        "--state",
        default=None,
        help="directory holding ledger.sqlite (default: <[state] dir>/<source>)",
    )
    rk.add_argument(
        "--feed",
        choices=["bybit", "synthetic", "replay"],
        help="override [feed] source (picks the default state dir)",
    )

    lg = sub.add_parser("ledger", help="read the ledger: fills, orders, daily PnL, summary")
    with_config(lg)
    lg.add_argument("what", choices=["fills", "orders", "pnl", "summary"])
    lg.add_argument(
        "--state",
        default=None,
        help="state dir (<dir>/ledger.sqlite or <dir>/<source>/ledger.sqlite; "
        "default: [state] dir)",
    )
    lg.add_argument(
        "--feed",
        choices=["bybit", "synthetic", "replay"],
        help="which feed's ledger (default: [feed] source)",
    )
    lg.add_argument(
        "--since",
        default=None,
        metavar="T",
        help="from T on (ISO 8601 UTC, e.g. 2024-07-19T00:05:00Z, or ns)",
    )
    lg.add_argument("--until", default=None, metavar="T", help="before T")
    lg.add_argument("--symbol", default=None)
    lg.add_argument("--format", choices=["table", "csv", "json", "parquet"], default="table")
    lg.add_argument(
        "--out",
        default=None,
        metavar="FILE",
        help="write here instead of stdout (required for parquet)",
    )

    rp = sub.add_parser("report", help="summary.json, charts and report.html of a ledger's run")
    with_config(rp)
    rp.add_argument("--state", default=None, help="state dir (as for `mmd ledger`)")
    rp.add_argument(
        "--feed",
        choices=["bybit", "synthetic", "replay"],
        help="which feed's ledger (default: [feed] source)",
    )
    rp.add_argument("--out", required=True, help="output directory")

    tr = sub.add_parser("train", help="train a model from recordings and write its model files")
    tr.add_argument("kind", choices=["adverse", "spread", "rl", "lstm", "multitask", "all"])
    tr.add_argument("data", nargs="+", help="recordings (files or directories)")
    tr.add_argument(
        "--out",
        required=True,
        help="models directory (the model goes in OUT/KIND; all: every model)",
    )
    tr.add_argument(
        "-c",
        "--config",
        default=None,
        help="config file for [market] and [features] (default: ./config.toml if "
        "present, else built-in)",
    )
    tr.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a training setting, e.g. --set horizon_s=5 (see README, Models), or "
        "a config override SECTION.KEY=VALUE (repeatable)",
    )
    tr.add_argument("--no-progress", action="store_true", help="no progress bars")
    tr.add_argument("--episodes", type=int, default=None, help="rl: learning episodes")
    tr.add_argument("--seed", type=int, default=None, help="rl: exploration seed")

    ev = sub.add_parser(
        "evaluate",
        help="walk-forward out-of-sample comparison of AS, GLFT, "
        "tuned AS and the learned models (needs the `train` "
        "extra)",
    )
    from mmd.learn.evaluate.spec import add_arguments as evaluate_arguments

    evaluate_arguments(ev)

    cv = sub.add_parser("convert", help="convert recordings between formats")
    cv.add_argument("kind", choices=["binance-usdm", "cryptofeed", "hftbacktest", "events"])
    cv.add_argument("inputs", nargs="+")
    cv.add_argument(
        "--out", required=True, help="output file or directory (events: the event cache directory)"
    )
    return p
