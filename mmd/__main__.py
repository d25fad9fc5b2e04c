"""CLI entry: `mmd <command>`. Parse args -> load config -> configure logs -> run.

Exit codes: 0 ok, 2 bad config or arguments, or a state dir this run cannot use (one line naming
the problem and how to proceed, no traceback), 1 crash.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence
from typing import Any, NoReturn

from mmd.errors import ConfigError, StateError

EXIT_OK, EXIT_CRASH, EXIT_CONFIG = 0, 1, 2


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


def _load(args: argparse.Namespace) -> object:
    from mmd.config import load_config

    sets = getattr(args, "set", None) or []
    if getattr(args, "config_from", None):
        if args.config:
            raise ConfigError("-c and --config-from: give one of them")
        return _load_recorded(args.config_from, sets)
    path = args.config
    if path is None and os.path.exists("config.toml"):
        path = "config.toml"
    return load_config(path, sets=sets)


def _read_summary(path: str) -> dict[str, object]:
    import json
    from pathlib import Path

    try:
        summary = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"--config-from {path}: cannot read ({exc.strerror})") from None
    except ValueError as exc:
        raise ConfigError(f"--config-from {path}: not JSON ({exc})") from None
    if not isinstance(summary, dict) or not isinstance(summary.get("config"), dict):
        raise ConfigError(
            f"--config-from {path}: no recorded `config` (a summary.json "
            "written by `mmd backtest --report`)"
        )
    return summary


def _load_recorded(path: str, sets: list[str]) -> object:
    """The config a summary.json recorded, then MMD_* variables and --set, validated."""
    from mmd.config import apply_env_overrides, apply_set_overrides, config_from_mapping

    table = dict(_read_summary(path)["config"])  # type: ignore[call-overload]
    table = apply_env_overrides(table, os.environ)
    return config_from_mapping(apply_set_overrides(table, sets))


def _recorded_data(path: str) -> list[str]:
    """The recordings a summary.json names, each checked against its recorded sha256."""
    from pathlib import Path

    from mmd.feeds.recording import file_sha256

    recs = _read_summary(path).get("recordings")
    if not isinstance(recs, list) or not recs:
        raise ConfigError(f"--config-from {path}: no recorded `recordings`")
    out = []
    for r in recs:
        if not isinstance(r, dict) or "path" not in r:
            raise ConfigError(f"--config-from {path}: bad `recordings` entry {r!r}")
        p = Path(str(r["path"]))
        if not p.is_file():
            raise ConfigError(f"--config-from {path}: recording {p} does not exist")
        if r.get("sha256") and file_sha256(p) != r["sha256"]:
            raise ConfigError(
                f"--config-from {path}: {p} differs from the recorded one (sha256 mismatch)"
            )
        out.append(str(p))
    return out


def _dispatch(args: argparse.Namespace) -> int:
    import msgspec

    from mmd.config import AppConfig, dump_config
    from mmd.logs import configure_logs

    if args.command == "serve-venue":
        import asyncio

        from mmd.venue.bybit_server import parse_faults, serve

        parse_faults(args.faults)  # bad spec -> exit 2 before binding anything
        configure_logs("info", "auto")
        asyncio.run(
            serve(args.data, args.host, args.port, args.speed, args.faults, args.keep_timestamps)
        )
        return EXIT_OK
    if args.command == "convert" and args.kind == "events":
        return _convert_events(args.inputs, args.out)
    if args.command == "convert":
        from mmd.feeds.convert import run_convert

        for path in run_convert(args.kind, args.inputs, args.out):
            print(path)
        return EXIT_OK

    if args.command == "synth" and args.seed is not None:
        args.set.append(f"feed.synthetic.seed={args.seed}")  # validated like any --set
    if args.command == "train":
        from mmd.learn.cli import run_train

        configure_logs("warning", "auto")
        path = args.config
        if path is None and os.path.exists("config.toml"):
            path = "config.toml"
        for key in ("episodes", "seed"):  # rl settings, validated like any --set
            if getattr(args, key) is not None:
                args.set.append(f"{key}={getattr(args, key)}")
        if args.kind == "all":
            from mmd.learn.cli import run_train_all

            run_train_all(
                args.data,
                args.out,
                args.set,
                path,
                progress=not args.no_progress and sys.stderr.isatty(),
            )
            return EXIT_OK
        run_train(
            args.kind,
            args.data,
            args.out,
            args.set,
            path,
            progress=not args.no_progress and sys.stderr.isatty(),
        )
        return EXIT_OK
    if args.command == "evaluate":
        from mmd.learn.evaluate.command import run_command

        configure_logs("error", "auto")
        path = args.config
        if path is None and os.path.exists("config.toml"):
            path = "config.toml"
        return run_command(args, path)

    cfg = _load(args)
    assert isinstance(cfg, AppConfig)
    feed = getattr(args, "feed", None)
    if feed:
        cfg = msgspec.structs.replace(cfg, feed=msgspec.structs.replace(cfg.feed, source=feed))
    if args.command == "check-config":
        sys.stdout.write(dump_config(cfg))
        return EXIT_OK
    if args.command == "risk":
        configure_logs(cfg.logs.level, cfg.logs.format)
        return _risk(cfg, args.action, args.state)
    if args.command in ("ledger", "report"):
        from mmd.ledger_cli import find_ledger, run_ledger

        path = find_ledger(args.state, cfg.state.dir, feed or cfg.feed.source)
        if args.command == "report":
            from mmd.ledger_report import report_from_ledger

            for f in report_from_ledger(path, args.out):
                print(f)
            return EXIT_OK
        return run_ledger(
            args.what,
            path,
            since=args.since,
            until=args.until,
            symbol=args.symbol,
            fmt=args.format,
            out=args.out,
        )
    configure_logs(cfg.logs.level, cfg.logs.format)
    if args.command == "synth":
        return _synth(cfg, args)
    from mmd import app

    if args.command == "backtest":
        return _backtest(app, cfg, args)
    if args.command == "tune":
        from mmd.tune.cli import run_tune

        return run_tune(cfg, args)
    if args.command == "run":
        app.run_daemon(cfg, exit_process=True)
    elif args.command == "record":
        for path in app.record(cfg, args.out, args.duration):
            print(path)
    return EXIT_OK


def _convert_events(inputs: list[str], out: str) -> int:
    """`mmd convert events REC... --out DIR`: the recordings' event cache, written to DIR."""
    from mmd.feeds.events import convert_events

    try:
        ev = convert_events(inputs, out)
    except (ValueError, OSError) as exc:
        raise ConfigError(f"convert events: {' '.join(str(exc).split())}") from exc
    m = ev.meta
    print(out)
    print(
        f"  {m['frames']} frames -> {len(ev.ev_kind)} events: {len(ev.book_sym)} book frames "
        f"({len(ev.level_px_ticks)} level rows), {len(ev.trade_px_ticks)} trades, "
        f"{len(ev.kline_start_ns)} klines, {len(ev.ticker_sym)} tickers, "
        f"{len(ev.symbols)} symbols; {m['decode_errors']} undecodable, {m['skipped']} "
        f"skipped, {m['refused']} refused; decoded in {m['decode_s']:.2f} s"
    )
    return EXIT_OK


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


def _backtest(app: object, cfg: object, args: argparse.Namespace) -> int:
    from mmd import app as app_mod
    from mmd.config import AppConfig

    assert isinstance(cfg, AppConfig)
    data = args.data
    if not data:
        if not args.config_from:
            raise ConfigError("backtest: no recordings given (or --config-from a summary.json)")
        data = _recorded_data(args.config_from)
    summaries = app_mod.backtest(
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


def _risk(cfg: object, action: str, state: str | None) -> int:
    """`mmd risk status|reset`: the kill switch as the ledger keeps it (stop the daemon before
    a reset: a running daemon keeps its own state until its next start)."""
    import datetime
    import time

    from mmd.config import AppConfig
    from mmd.model.codes import NS_PER_DAY
    from mmd.trading.ledger import LEDGER_FILE, Ledger, ledger_path
    from mmd.trading.risk import kill_switch_status, reset_kill_switch

    assert isinstance(cfg, AppConfig)
    path = (
        ledger_path(cfg.state.dir, cfg.feed.source)
        if state is None
        else __import__("pathlib").Path(state) / LEDGER_FILE
    )
    now_ns = time.time_ns()
    with Ledger.open(path, create=False) as led:
        if action == "reset":
            was = reset_kill_switch(led, now_ns)
            from mmd.logs import get_logger

            get_logger("risk").info(
                "risk_reset", symbol=None, ledger=str(path), was_halted=was, by="mmd risk reset"
            )
            print(
                f"kill switch reset in {path} (was {'halted' if was else 'not halted'}); "
                "the day's PnL count restarts at the daemon's next start"
            )
            return EXIT_OK
        st = kill_switch_status(led, now_ns)
    day = datetime.datetime.fromtimestamp(now_ns // NS_PER_DAY * 86_400, datetime.UTC).date()
    pnl = "n/a" if st.day_pnl_quote is None else f"{st.day_pnl_quote:.6g}"
    limit = cfg.risk.max_loss_per_day
    print(f"ledger    {path}")
    print(f"halted    {'yes: ' + st.reason if st.halted else 'no'}")
    print(f"day       {day} (UTC)")
    print(f"day pnl   {pnl} (at the last snapshot)")
    print(f"limit     {'-' + format(limit, 'g') if limit > 0 else 'none'}")
    return EXIT_OK


def _synth(cfg: object, args: argparse.Namespace) -> int:
    import datetime as dt
    import time

    from mmd.config import AppConfig
    from mmd.feeds.synth_session import DEFAULT_START_NS, write_session

    assert isinstance(cfg, AppConfig)
    start_ns = DEFAULT_START_NS
    if args.start:
        try:
            when = dt.datetime.fromisoformat(args.start)
        except ValueError:
            raise ConfigError(f"--start: not an ISO time: {args.start!r}") from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        if not 0 <= when.timestamp() < 7_258_118_400:  # 1970 .. 2200: int64 ns with room
            raise ConfigError(f"--start: must be between 1970 and 2200, got {args.start!r}")
        start_ns = round(when.timestamp()) * 1_000_000_000
    t0 = time.perf_counter()
    for rec, truth in write_session(cfg, args.out, args.duration, start_ns):
        print(rec)
        print(truth)
    wall = time.perf_counter() - t0
    sys.stderr.write(
        f"mmd synth: {args.duration:g} simulated s x {len(cfg.feed.symbols)} "
        f"symbol(s) in {wall:.1f} s\n"
    )
    return EXIT_OK


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
        return _dispatch(args)
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
