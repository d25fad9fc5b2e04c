"""The episodes of `mmd train rl`: the windows an episode replays (cut from each recording's
event cache) and the two runners, the daemon's own per-frame path (`run_episode_python`) and the
jitted loop over the window's event cache (`run_episode_fast`, when the state needs nothing that
loop lacks).

Shell: reads recordings; the fast runner writes the window's frames as a recording.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import msgspec
import numpy as np
import numpy.typing as npt

from mmd.config import AppConfig
from mmd.errors import ConfigError
from mmd.kernels import rl as krl
from mmd.learn.runtime import LoadedModels, RlPolicy

F64Array = npt.NDArray[np.float64]
I64Array = npt.NDArray[np.int64]
U64Array = npt.NDArray[np.uint64]


def rl_arrays(cfg: AppConfig, mode: int) -> tuple[F64Array, I64Array, I64Array, F64Array, F64Array]:
    """Fresh (q, visits, rpi, rpf, actions) from the [models] rl_* keys."""
    mc = cfg.models
    rpi, rpf = krl.make_params(
        (
            mc.rl_inventory_bins,
            mc.rl_volatility_bins,
            mc.rl_ofi_bins,
            mc.rl_adverse_bins,
            mc.rl_time_bins,
        ),
        round(mc.rl_step_s * 1e9),
        mode,
        alpha=mc.rl_alpha,
        discount=mc.rl_discount,
        epsilon=mc.rl_epsilon,
        damp=mc.rl_damp,
        penalty=mc.rl_penalty_ticks,
        vol_ref=mc.rl_vol_ref_ticks,
        ofi_scale=mc.rl_ofi_scale,
    )
    actions = krl.default_actions()
    q = np.zeros((krl.n_states(rpi), len(actions)))
    visits = np.zeros(q.shape, np.int64)
    return q, visits, rpi, rpf, actions


@dataclass
class Window:
    """One recording's part an episode replays: frames received in [start_ns, end_ns);
    earlier frames only build the market state (as `mmd backtest` with a window)."""

    name: str
    symbol: str
    category: str
    files: list[Path]
    start_ns: int
    end_ns: int
    events: Any = None  # the recording's EventArrays (a jitted runner's input)
    frames: list[tuple[int, bytes]] = field(default_factory=list)  # the Python runner's
    models: LoadedModels | None = None  # adverse/spread models quoting alongside RL
    part_dir: Path | None = None  # where the fast runner writes the window as a recording
    part_events: Any = None  # ... and its event cache


class EpisodeRunner(Protocol):
    """One learning (or evaluation) pass over a window; the arrays are shared and mutated
    (q, visits in MODE_LEARN; rs, rng always). Returns at least pnl (quote), fills and
    reward_sum (tick-lots)."""

    def __call__(
        self,
        events: Window,
        cfg: AppConfig,
        q: F64Array,
        visits: I64Array,
        rpi: I64Array,
        rpf: F64Array,
        actions: F64Array,
        rs: F64Array,
        rng: U64Array,
    ) -> dict[str, Any]: ...


def run_episode_python(
    events: Window,
    cfg: AppConfig,
    q: F64Array,
    visits: I64Array,
    rpi: I64Array,
    rpf: F64Array,
    actions: F64Array,
    rs: F64Array,
    rng: U64Array,
) -> dict[str, Any]:
    """An episode through the daemon's own Python path: MarketHub, Trader and SymbolStrategy
    (rl_decide at each decision, before the quote kernel, with these very arrays), the
    paper exchange and the portfolio, frame by frame through `mmd backtest`'s own loop
    (mmd.frames.window_frames)."""
    from mmd.app import build_trader
    from mmd.frames import window_frames
    from mmd.market.hub import MarketHub

    w = events
    if not w.frames:
        from mmd.feeds.replay import merged_frames

        w.frames = list(merged_frames(sorted(w.files)))
    run_cfg = msgspec.structs.replace(
        cfg, feed=msgspec.structs.replace(cfg.feed, category=w.category, symbols=[w.symbol])
    )
    hub = MarketHub([w.symbol], run_cfg.market, features_cfg=run_cfg.features)
    trader = build_trader(run_cfg, hub, ledger=False)
    base = w.models or LoadedModels()
    policy = RlPolicy(None, q, visits, rpi, rpf, actions, rs=rs, rng=rng)
    trader.models = LoadedModels(base.adverse, base.spread, policy)
    frames = sum(1 for _ in window_frames(hub, trader, w.frames, w.start_ns, w.end_ns))
    strat = trader.strategies.get(w.symbol)
    counts = (
        strat.rl.counts
        if strat is not None and strat.rl is not None
        else np.zeros(len(actions), np.int64)
    )
    return {
        "pnl": float(trader.portfolio.total_pnl_quote),
        "fills": len(trader.fills),
        "reward_sum": float(rs[krl.RS_REWARD_SUM]),
        "decisions": int(rs[krl.RS_DECISIONS]),
        "frames": frames,
        "position_lots": trader.portfolio.position_lots(w.symbol),
        "action_counts": counts.tolist(),
    }


def fast_episode() -> Callable[..., Any] | None:
    """The jitted loop's episode function (mmd.sim.backtest.run_episode), when this mmd has it."""
    from mmd.sim import backtest as sb

    return getattr(sb, "run_episode", None)


def fast_unsupported(cfg: AppConfig, windows: list[Window]) -> str | None:
    """Why the jitted loop cannot train this state and config (None = it can): it runs no
    feature engine (OFI) and no learned model, and has its own limits (funding, steps)."""
    if fast_episode() is None:
        return "this mmd has no jitted episode loop"
    if cfg.models.rl_ofi_bins > 1:
        return "models.rl_ofi_bins > 1 bins the OFI, which the jitted loop does not compute"
    if any(w.models is not None and w.models.active for w in windows):
        return "the adverse/spread models quote alongside, and the jitted loop runs none"
    if cfg.strategy.model not in ("as", "glft"):
        return f"strategy model {cfg.strategy.model}"
    from mmd.sim import backtest as sb

    check = getattr(sb, "unsupported", None)
    for w in windows:
        why = check(_part_events(w), cfg) if check is not None else None
        if why:
            return f"{w.name}: {why}"
    return None


def _part_events(w: Window) -> Any:
    """The event cache of the window's frames alone (written once as a recording beside the
    model: the jitted loop replays a whole cache)."""
    if w.part_events is None:
        from mmd.feeds.convert.event_cache import load_events
        from mmd.feeds.recording import RecordingWriter
        from mmd.feeds.replay import merged_frames

        assert w.part_dir is not None and w.start_ns <= _first_ts(w)
        out = w.part_dir / w.files[0].name
        out.parent.mkdir(parents=True, exist_ok=True)
        if not out.exists():
            with RecordingWriter(out) as rw:
                for ts, raw in merged_frames(sorted(w.files)):
                    if ts >= w.end_ns:
                        break
                    rw.write(ts, raw)
        w.part_events = load_events([out])
    return w.part_events


def _first_ts(w: Window) -> int:
    return int(w.events.ev_ts_recv_ns[0]) if w.events is not None else w.start_ns


def run_episode_fast(
    events: Window,
    cfg: AppConfig,
    q: F64Array,
    visits: I64Array,
    rpi: I64Array,
    rpf: F64Array,
    actions: F64Array,
    rs: F64Array,
    rng: U64Array,
) -> dict[str, Any]:
    """An episode in the jitted loop over the window's own event cache (a training window
    starts at the recording's start: the loop needs no earlier market state)."""
    fn = fast_episode()
    assert fn is not None
    w = events
    run_cfg = msgspec.structs.replace(
        cfg, feed=msgspec.structs.replace(cfg.feed, category=w.category, symbols=[w.symbol])
    )
    res = fn(_part_events(w), run_cfg, q, visits, rpi, rpf, actions, rs, rng)
    return {
        "pnl": float(res.total_pnl_quote),
        "fills": len(res.fills),
        "reward_sum": float(rs[krl.RS_REWARD_SUM]),
        "decisions": int(rs[krl.RS_DECISIONS]),
    }


def split_windows(
    cfg: AppConfig,
    data: list[str],
    n_splits: int,
    purge_ns: int,
    progress: bool,
    end_ns: list[int] | None = None,
) -> tuple[list[Window], list[Window], list[dict[str, str]]]:
    """(training windows, held-out windows, training data digests), one of each per
    recording: its event-cache receive times (before end_ns[i], when given) cut by
    walk_forward_splits' last split."""
    from tqdm import tqdm

    from mmd.feeds.convert.event_cache import load_events
    from mmd.feeds.recording import expand_paths, file_sha256, recording_meta
    from mmd.learn.dataset import walk_forward_splits

    files = expand_paths(data)
    if not files:
        raise ConfigError("train rl: no recordings found in " + ", ".join(data))
    train: list[Window] = []
    held: list[Window] = []
    digests: list[dict[str, str]] = []
    for i, f in enumerate(tqdm(files, desc="event cache", unit="rec", disable=not progress)):
        if not f.exists():
            raise ConfigError(f"train rl: {f} does not exist")
        meta = recording_meta(f)
        if meta is None:
            raise ConfigError(
                f"train rl: {f}: not a recording (its first line is not the "
                "instruments-info answer of one symbol)"
            )
        try:
            ev = load_events([f])
        except ValueError as exc:
            raise ConfigError(f"train rl: {exc}") from None
        t = np.asarray(ev.ev_ts_recv_ns, np.int64)
        if end_ns is not None:
            t = t[t < end_ns[i]]
        splits = walk_forward_splits(t, n_splits, purge_ns)
        if not splits:
            raise ConfigError(f"train rl: {f}: too short to split ({len(t)} events)")
        a, b = splits[-1]
        name = f"{meta.symbol} {meta.category} ({f.name})"
        for out, lo, hi in (
            (train, int(t[0]), int(t[a[-1]]) + 1),
            (held, int(t[b[0]]), int(t[b[-1]]) + 1),
        ):
            out.append(
                Window(
                    name=name,
                    symbol=meta.symbol,
                    category=meta.category,
                    files=[f],
                    start_ns=lo,
                    end_ns=hi,
                    events=ev,
                )
            )
        digests.append(
            {
                "path": str(f),
                "sha256": file_sha256(f),
                "symbol": meta.symbol,
                "category": meta.category,
            }
        )
    return train, held, digests


def choose_runner(
    cfg: AppConfig, train: list[Window], engine: str, out_dir: Path, echo: Callable[[str], None]
) -> tuple[EpisodeRunner, str]:
    """(runner, "fast" | "python") for the engine setting; auto prints why it is not fast."""
    if engine == "python":
        return run_episode_python, "python"
    for w in train:
        w.part_dir = out_dir / "train_part"
    why = fast_unsupported(cfg, train)
    if why is None:
        return run_episode_fast, "fast"
    if engine == "fast":
        raise ConfigError(f"train rl: --set engine=fast: {why}")
    echo(f"training episodes run on the per-frame driver: {why}")
    return run_episode_python, "python"
