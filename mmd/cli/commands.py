"""The handlers of every `mmd` command but backtest: parse the config, configure the logs, run the
command (the daemon, a recording, training, a conversion, the ledger and risk tools); returns the
exit code. Errors propagate to mmd.__main__:main, which maps them to exit codes.
"""

from __future__ import annotations

import argparse
import os
import sys

from mmd.cli import EXIT_OK
from mmd.cli.backtest_cmd import run_backtest
from mmd.cli.config_args import load_args_config
from mmd.config import AppConfig
from mmd.errors import ConfigError


def dispatch(args: argparse.Namespace) -> int:
    """Run the parsed command; returns its exit code."""
    import msgspec

    from mmd.config import dump_config
    from mmd.logs import configure_logs

    if args.command == "serve-venue":
        import asyncio

        from mmd.venue import parse_faults, serve

        parse_faults(args.faults)  # bad spec -> exit 2 before binding anything
        configure_logs("info", "auto")
        asyncio.run(
            serve(args.data, args.host, args.port, args.speed, args.faults, args.keep_timestamps)
        )
        return EXIT_OK
    if args.command == "convert" and args.kind == "events":
        return _convert_events(args.inputs, args.out)
    if args.command == "convert":
        from mmd.feeds.convert.dispatch import run_convert

        for out_path in run_convert(args.kind, args.inputs, args.out):
            print(out_path)
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

    cfg = load_args_config(args)
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

        ledger_file = find_ledger(args.state, cfg.state.dir, feed or cfg.feed.source)
        if args.command == "report":
            from mmd.ledger_report import report_from_ledger

            for f in report_from_ledger(ledger_file, args.out):
                print(f)
            return EXIT_OK
        return run_ledger(
            args.what,
            ledger_file,
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
        return run_backtest(cfg, args)
    if args.command == "tune":
        from mmd.tune.cli import run_tune

        return run_tune(cfg, args)
    if args.command == "run":
        app.run_daemon(cfg, exit_process=True)
    elif args.command == "record":
        for rec_path in app.record(cfg, args.out, args.duration):
            print(rec_path)
    return EXIT_OK


def _convert_events(inputs: list[str], out: str) -> int:
    """`mmd convert events REC... --out DIR`: the recordings' event cache, written to DIR."""
    from mmd.feeds.convert.event_cache import convert_events

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


def _risk(cfg: AppConfig, action: str, state: str | None) -> int:
    """`mmd risk status|reset`: the kill switch as the ledger keeps it (stop the daemon before
    a reset: a running daemon keeps its own state until its next start)."""
    import datetime
    import time

    from mmd.model.codes import NS_PER_DAY
    from mmd.trading.ledger import LEDGER_FILE, Ledger, ledger_path
    from mmd.trading.risk import kill_switch_status, reset_kill_switch

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


def _synth(cfg: AppConfig, args: argparse.Namespace) -> int:
    import datetime as dt
    import time

    from mmd.feeds.synth_session import DEFAULT_START_NS, write_session

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
