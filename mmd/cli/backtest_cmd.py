"""`mmd backtest`: runs mmd.backtest_run.backtest with the command's arguments and prints each
symbol's summary (and the whole book's with several symbols). Prints; computes nothing itself.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from mmd.cli import EXIT_OK
from mmd.cli.config_args import recorded_data
from mmd.config import AppConfig
from mmd.errors import ConfigError

_SUMMARY_ROWS = [
    ("pnl", "PnL (quote)", ".4f"),
    ("fees", "fees (quote)", ".4f"),
    ("sharpe", "Sharpe", ".2f"),
    ("sortino", "Sortino", ".2f"),
    ("max_drawdown", "max drawdown (quote)", ".4f"),
    ("fills", "fills", "d"),
    ("volume", "volume (base)", ".4f"),
    ("win_rate", "win rate", ".3f"),
    ("avg_spread_captured", "spread captured (ticks)", ".3f"),
    ("markout_1s", "markout 1 s (ticks)", ".3f"),
    ("markout_5s", "markout 5 s (ticks)", ".3f"),
    ("markout_30s", "markout 30 s (ticks)", ".3f"),
    ("mean_abs_position", "mean |position| (base)", ".5f"),
    ("pnl_to_map", "PnL / mean |position|", ".3f"),
    ("pnl_per_notional_bps", "PnL / notional (bps)", ".3f"),
    ("events", "events", "d"),
]


def run_backtest(cfg: AppConfig, args: argparse.Namespace) -> int:
    """`mmd backtest`: the backtest of the arguments' recordings, its summaries printed."""
    from mmd.backtest_run import backtest

    data = args.data
    if not data:
        if not args.config_from:
            raise ConfigError("backtest: no recordings given (or --config-from a summary.json)")
        data = recorded_data(args.config_from)
    summaries = backtest(
        cfg,
        data,
        strategy=args.strategy or cfg.strategy.model,
        report_dir=args.report,
        fills_csv=args.fills,
        start_ns=args.start_ns,
        end_ns=args.end_ns,
        engine=args.engine,
        progress=not args.no_progress and sys.stderr.isatty(),
    )
    for s in summaries:
        print(f"{s['symbol']} ({s['category']}, strategy {s['strategy']})")
        for key, label, spec in _SUMMARY_ROWS:
            v = s.get(key)
            text = "n/a" if v is None or (isinstance(v, float) and v != v) else format(v, spec)
            print(f"  {label:<26} {text:>14}")
        print(
            f"  Sharpe/Sortino basis: {s.get('sharpe_basis')}, {s.get('sharpe_samples')} "
            "samples" + (f"; n/a: {s['sharpe_note']}" if s.get("sharpe_note") else "")
        )
        if "models" in s:
            versions = ", ".join(f"{k} {v}" for k, v in s["models"].items()) or "none (neutral)"
            print(
                f"  models: {versions}; decisions with a side widened or withdrawn: "
                f"{100 * s['widened_fraction']:.1f}%"
            )
    if summaries and summaries[0].get("book"):
        _print_book(summaries[0]["book"])
    if args.report:
        print(f"report written to {args.report}")
    if args.fills:
        print(f"fills written to {args.fills}")
    return EXIT_OK


def _print_book(book: dict[str, Any]) -> None:
    """The whole book of a multi-symbol backtest: PnL and net delta (quote currency)."""

    def q(v: float | None) -> str:
        return "n/a" if v is None else f"{v:.4f}"

    print(f"book ({' + '.join(book['symbols'])})")
    print(f"  {'PnL (quote)':<26} {q(book['pnl']):>14}")
    print(f"  {'net delta mean |.| (quote)':<26} {q(book['net_delta_mean_abs_quote']):>14}")
    print(f"  {'net delta RMS (quote)':<26} {q(book['net_delta_rms_quote']):>14}")
    print(f"  {'net delta max |.| (quote)':<26} {q(book['net_delta_max_abs_quote']):>14}")
    legs = ", ".join(f"{s} {q(v)}" for s, v in book["leg_mean_abs_quote"].items())
    print(
        f"  mean |position x mid| per symbol: {legs}; net delta sampled every "
        f"{book['net_delta_step_s']:g} s ({book['net_delta_samples']} samples)"
    )
    h = book.get("hedge")
    if h is None:
        print("  hedge: off")
    else:
        betas = (
            ", ".join(f"{s} {v['beta']:.3f} (SE {v['se']:.3f})" for s, v in h["betas"].items())
            or "none yet"
        )
        print(
            f"  hedge: on, through {h['instrument']}, skew {h['skew_ticks']:g} ticks; "
            f"final beta {betas}"
        )
