"""`mmd backtest`: reads the recordings (or their event cache), drives the strategy and paper
exchange over them (frame by frame, or the jitted loop) and writes the summaries, reports and fills
CSV. Shell: what is sampled and summarised lives in mmd.sim.backtest_series.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from mmd import __version__
from mmd.app import build_trader
from mmd.config import AppConfig, dump_config
from mmd.errors import ConfigError
from mmd.feeds.recording import expand_paths, file_sha256, recording_meta
from mmd.feeds.replay import merged_frames
from mmd.frames import window_frames
from mmd.logs import get_logger
from mmd.market.hub import MarketHub
from mmd.model.instrument import Instrument
from mmd.quote_models import load_quote_models
from mmd.report_files import add_to_summary, write_csv, write_report
from mmd.sim.backtest_series import (
    SeriesSampler,
    book_figures,
    loop_series,
    symbol_path,
)
from mmd.sim.fill_table import FILL_COLUMNS, fill_rows
from mmd.sim.net_delta import SymbolPath
from mmd.sim.report import summarize
from mmd.sim.report_charts import ReportSeries
from mmd.strategy.hedge import PortfolioHedge

if TYPE_CHECKING:
    from mmd.learn.runtime import LoadedModels


def config_table(cfg: AppConfig) -> dict[str, Any]:
    """The config as the table config.toml would hold (what `mmd check-config` prints, read
    back): JSON- and TOML-compatible, and `--config-from` loads it as a config file."""
    return tomllib.loads(dump_config(cfg))


def backtest(
    cfg: AppConfig,
    paths: list[str],
    *,
    strategy: str,
    report_dir: str | None,
    progress: bool = True,
    fills_csv: str | None = None,
    start_ns: int | None = None,
    end_ns: int | None = None,
    engine: str = "fast",
) -> list[dict[str, Any]]:
    """`mmd backtest`: the daemon's strategy and paper exchange over recordings, as fast as
    possible, one symbol at a time; returns one summary per symbol (and writes reports).

    Quotes are decided after every book frame on the frame's time, exactly as `--feed replay`
    does; fills come from the same SimExchange as a live run. Nothing is journaled.

    Each summary also records what reproduces it: `config` (the effective config of that
    symbol's run, as a TOML table), `recordings` (path and sha256 of each file), `mmd_version`
    and `seed` (`feed.synthetic.seed`, the config's only seed: the backtest itself draws no
    random numbers). With fills_csv, every fill of every symbol is written there, one row per
    fill with its markouts (mmd.sim.fill_table), in time order.

    start_ns/end_ns restrict trading to the frames received in [start_ns, end_ns) (receive
    stamps, ns; None = open end). Frames before start_ns still build the market state (book,
    features) so the book is synced at the window start, but the trader (strategy,
    calibration, paper exchange, portfolio) starts fresh at start_ns, as a daemon started then
    would; `events` counts the frames in the window only. A window is recorded in the summary
    as `window_ns` ([start_ns, end_ns]) only when one is given.

    engine "fast" (the default) runs each symbol in one jitted loop over the event cache
    (mmd.sim.backtest.run_backtest_fast: the same kernels, the same results); "python" drives
    FrameHandler + Trader frame by frame (the reference). What the fast loop does not do
    (`--strategy ml` or `deep`, a window, funding from tickers, an instrument step change)
    runs on the python engine, with one log line saying why.
    """

    if strategy not in ("as", "glft", "ml", "deep"):
        raise ConfigError(f"--strategy {strategy}: expected as, glft, ml or deep")
    models = None
    if strategy == "ml":  # AS quotes with both models from [models] dir
        models = load_quote_models(cfg, None, 0, force=True)
    elif strategy == "deep":  # AS quotes with the deep model ([models] dir/lstm)
        models = load_quote_models(cfg, None, 0, deep=True)
    ml_quoted = strategy in ("ml", "deep")
    cfg = msgspec.structs.replace(
        cfg, strategy=msgspec.structs.replace(cfg.strategy, model="as" if ml_quoted else strategy)
    )
    files = expand_paths(paths)
    if not files:
        raise ConfigError("backtest: no recordings found in " + ", ".join(paths))
    by_symbol: dict[tuple[str, str], list[Path]] = {}
    for f in files:
        if not f.exists():
            raise ConfigError(f"backtest: {f} does not exist")
        meta = recording_meta(f)  # from the first line, whatever the file is called
        if meta is None:
            raise ConfigError(
                f"backtest: {f}: not a recording (its first line is not the "
                "instruments-info answer of one symbol)"
            )
        by_symbol.setdefault((meta.category, meta.symbol), []).append(f)
    if engine not in ("fast", "python"):
        raise ConfigError(f"--engine {engine}: expected fast or python")
    why_not = (
        f"--strategy {strategy}"
        if ml_quoted
        else "a --start-ns/--end-ns window"
        if start_ns is not None or end_ns is not None
        else None
    )
    joint = cfg.hedge.enabled and len(by_symbol) > 1  # the beta hedge needs one book
    if joint:
        why_not = why_not or "[hedge] enabled (one joint book of every symbol)"
    if engine == "fast" and why_not is not None:
        get_logger("backtest").info(
            "backtest_engine_python", reason=f"{why_not} is not in the fast engine"
        )
        engine = "python"
    summaries: list[dict[str, Any]] = []
    fill_table: list[dict[str, Any]] = []
    sym_paths: dict[str, SymbolPath] = {}  # symbol -> its sampled path (the book's net delta)
    hedge = None
    if joint:  # every symbol in one book, so the beta hedge sees the whole of it
        categories = {c for c, _ in by_symbol}
        if len(categories) > 1:
            raise ConfigError(
                "backtest: [hedge] needs recordings of one category, got "
                + ", ".join(sorted(categories))
            )
        hedge = PortfolioHedge(cfg.hedge)
        groups = [
            (
                categories.pop(),
                sorted(s for _, s in by_symbol),
                sorted(f for fs in by_symbol.values() for f in fs),
            )
        ]
    else:
        groups = [(c, [s], sorted(recs)) for (c, s), recs in sorted(by_symbol.items())]
    single = len(by_symbol) == 1
    for category, symbols, recs in groups:
        run_cfg = msgspec.structs.replace(
            cfg, feed=msgspec.structs.replace(cfg.feed, category=category, symbols=symbols)
        )
        fast = (
            _backtest_fast(run_cfg, recs, symbols[0])
            if engine == "fast" and len(symbols) == 1
            else None
        )
        if fast is not None:
            n_frames, series, inst = fast
            summary = summarize(
                series.equity_ts_ns,
                series.equity_quote,
                series.position_lots,
                series.fills,
                series.mids,
                lot=inst.lot,
                tick=inst.tick,
                strategy=strategy,
                events=n_frames,
            )
            summary.update(symbol=symbols[0], category=category, **_provenance(run_cfg, recs))
            results: list[tuple[dict[str, Any], ReportSeries, Instrument]] = [
                (summary, series, inst)
            ]
        else:
            results = _backtest_python(
                run_cfg,
                category,
                symbols,
                recs,
                models,
                hedge,
                strategy=strategy,
                progress=progress,
                start_ns=start_ns,
                end_ns=end_ns,
            )
        for summary, series, inst in results:
            symbol = summary["symbol"]
            if fills_csv:
                fill_table.extend(
                    fill_rows(
                        series.fills,
                        series.mids,
                        symbol=symbol,
                        tick=inst.tick,
                        lot=inst.lot,
                        format_px=inst.format_px,
                        format_qty=inst.format_qty,
                    )
                )
            summaries.append(summary)
            sym_paths[symbol] = symbol_path(
                series.equity_ts_ns, series.position_lots, series.mids, inst, summary["pnl"]
            )
            if report_dir:
                write_report(
                    summary, series, Path(report_dir) if single else Path(report_dir) / symbol
                )
    if fills_csv:
        write_csv(Path(fills_csv), FILL_COLUMNS, sorted(fill_table, key=lambda r: r["ts"]))
    book = book_figures(sym_paths, hedge)
    if book is not None:  # each report's summary.json (report_dir/<symbol>/) gets it too
        for s in summaries:
            s["book"] = book
            if report_dir:
                add_to_summary(Path(report_dir) / s["symbol"] / "summary.json", "book", book)
    return summaries


def _provenance(run_cfg: AppConfig, recs: list[Path]) -> dict[str, Any]:
    """What reproduces a backtest summary: the recordings with their sha256, the effective
    config, the mmd version and the seed (the config's only one)."""
    return {
        "recordings": [{"path": str(r), "sha256": file_sha256(r)} for r in recs],
        "config": config_table(run_cfg),
        "mmd_version": __version__,
        "seed": run_cfg.feed.synthetic.seed,
    }


def _backtest_python(
    run_cfg: AppConfig,
    category: str,
    symbols: list[str],
    recs: list[Path],
    models: LoadedModels | None,
    hedge: PortfolioHedge | None,
    *,
    strategy: str,
    progress: bool,
    start_ns: int | None,
    end_ns: int | None,
) -> list[tuple[dict[str, Any], ReportSeries, Instrument]]:
    """The python engine of `mmd backtest`: FrameHandler + Trader frame by frame over the
    recordings merged by receive time (the `--feed replay` order), every symbol of `symbols` in
    one MarketHub and one Trader (one symbol unless the beta hedge needs the whole book).
    Returns (summary, ReportSeries, instrument) per symbol, in `symbols` order."""
    from tqdm import tqdm

    hub = MarketHub(symbols, run_cfg.market, features_cfg=run_cfg.features)
    trader = build_trader(run_cfg, hub, ledger=False)
    trader.models = models
    if hedge is not None:
        trader.hedge = hedge
    sampler = SeriesSampler(symbols)
    n_frames = 0
    frames = tqdm(
        merged_frames(recs),
        desc="backtest " + "+".join(symbols),
        unit="frame",
        disable=not progress,
        mininterval=0.5,
    )
    for _ in window_frames(hub, trader, frames, start_ns, end_ns):
        n_frames += 1
        sampler.sample(hub, trader)
    return sampler.results(
        hub,
        trader,
        models,
        category=category,
        strategy=strategy,
        n_frames=n_frames,
        provenance=_provenance(run_cfg, recs),
        start_ns=start_ns,
        end_ns=end_ns,
    )


def _backtest_fast(
    cfg: AppConfig, recs: list[Path], symbol: str
) -> tuple[int, ReportSeries, Instrument] | None:
    """One symbol's backtest in the jitted loop over its event cache: (frames, ReportSeries,
    Instrument), or None (with a log line) when the loop cannot run it."""
    from mmd.feeds.convert.event_cache import load_events
    from mmd.sim.backtest import run_backtest_fast, unsupported

    ev = load_events(recs)
    if not len(ev.inst_sym):
        raise ConfigError(f"backtest: no instrument frame for {symbol} in the recording")
    why = unsupported(ev, cfg)
    if why is not None:
        get_logger("backtest").info("backtest_engine_python", symbol=symbol, reason=why)
        return None
    r = run_backtest_fast(ev, cfg)
    inst = ev.instrument(len(ev.inst_sym) - 1)
    return int(ev.meta["frames"]), loop_series(r, inst, symbol), inst
