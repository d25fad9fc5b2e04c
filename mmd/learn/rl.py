"""`mmd train rl`: the tabular Q-learning policy, learnt by replaying recordings many times.

Each recording is decoded through the event cache (mmd.feeds.convert.events), which gives its time
span, and cut by time (mmd.learn.dataset.walk_forward_splits, last split): episodes learn on
the earlier blocks, the last block is held out and replayed once greedily and once with the
RL adjustment off, to compare. An episode is one pass over every recording's training part
with the strategy quoting through the RL kernel in MODE_LEARN (epsilon-greedy, seeded); the
Q table, visit counts and generator carry over from episode to episode, the agent's running
state starts afresh with each recording.

The episode runner is injectable (`EpisodeRunner`): `run_episode_python` drives the product's
own Python backtest path (MarketHub, Trader, SymbolStrategy, SimExchange: the daemon's code,
frame by frame), exact but slow; `run_episode_fast` runs the jitted backtest loop over the
training part's event cache (mmd.sim.backtest.run_episode), the same decisions much faster,
when the state needs nothing that loop lacks. `train_rl` is the entry `mmd train all` and
`mmd evaluate` call, with the other trainers' signature.

Shell: reads recordings, writes the model directory and its convergence plot.
"""

from __future__ import annotations

import datetime as dt
import math
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import msgspec
import numpy as np

from mmd.config import AppConfig
from mmd.errors import ConfigError
from mmd.kernels import rl as krl
from mmd.learn.model_file import ModelMeta, save_model
from mmd.learn.runtime import RL_OBSERVATIONS, LoadedModels, RlPolicy, action_label
from mmd.learn.sets import split_sets


class RlTrainParams(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """`mmd train rl` settings (`--set key=value`; --episodes and --seed set the first two).

    episodes: passes over the training part; seed: the exploration generator's seed;
    n_splits: the recordings' time span is cut into n_splits + 1 blocks, the last one held out
    (4: train on the first 80 %); purge_s: gap on both sides of the cut (default one RL step);
    epsilon_end: exploration decays linearly from [models] rl_epsilon to this over the
    episodes (None: constant). engine: the training episodes' runner, "fast" (the jitted loop
    over the event cache, mmd.sim.backtest.run_episode), "python" (run_episode_python) or
    "auto" (fast when it can see the whole state: see fast_unsupported).
    """

    episodes: int = 30
    seed: int = 7
    n_splits: int = 4
    purge_s: float | None = None
    epsilon_end: float | None = None
    engine: Literal["auto", "fast", "python"] = "auto"

    def __post_init__(self) -> None:
        if not 1 <= self.episodes <= 100_000:
            raise ValueError("episodes must be in [1, 100000]")
        if not 1 <= self.n_splits <= 100:
            raise ValueError("n_splits must be in [1, 100]")
        if self.epsilon_end is not None and not 0.0 <= self.epsilon_end <= 1.0:
            raise ValueError("epsilon_end must be in [0, 1]")


def parse_rl_sets(sets: list[str]) -> tuple[RlTrainParams, list[str]]:
    """`key=value` items set RlTrainParams fields (value as JSON); `section.key=value` items
    are config overrides (e.g. models.rl_alpha=0.2), returned as they are.

    Raises:
        ConfigError: no `=`, an unknown key, or a bad value.
    """
    train, config_sets = split_sets(
        sets,
        set(RlTrainParams.__struct_fields__),
        "; RL hyper-parameters are config keys: --set models.rl_alpha=0.2",
    )
    try:
        return msgspec.convert(train, RlTrainParams), config_sets
    except (msgspec.ValidationError, ValueError) as exc:
        raise ConfigError(f"--set: {exc}") from None


def rl_arrays(cfg: AppConfig, mode: int) -> tuple[np.ndarray, ...]:
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
        q: np.ndarray,
        visits: np.ndarray,
        rpi: np.ndarray,
        rpf: np.ndarray,
        actions: np.ndarray,
        rs: np.ndarray,
        rng: np.ndarray,
    ) -> dict[str, Any]: ...


def run_episode_python(
    events: Window,
    cfg: AppConfig,
    q: np.ndarray,
    visits: np.ndarray,
    rpi: np.ndarray,
    rpf: np.ndarray,
    actions: np.ndarray,
    rs: np.ndarray,
    rng: np.ndarray,
) -> dict[str, Any]:
    """An episode through the daemon's own Python path: MarketHub, Trader and SymbolStrategy
    (rl_decide at each decision, before the quote kernel, with these very arrays), the
    paper exchange and the portfolio, frame by frame as `mmd backtest` does."""
    from mmd.app import build_trader
    from mmd.frames import FrameHandler
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
    handler = FrameHandler(hub, None, None, trader, quote_inline=True)
    market_only = FrameHandler(hub)
    frames = 0
    for ts, raw in w.frames:
        if ts >= w.end_ns:
            break
        if ts < w.start_ns:
            market_only(raw, ts)
            continue
        handler(raw, ts)
        frames += 1
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
    q: np.ndarray,
    visits: np.ndarray,
    rpi: np.ndarray,
    rpf: np.ndarray,
    actions: np.ndarray,
    rs: np.ndarray,
    rng: np.ndarray,
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
    train, held, digests = [], [], []
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
        common = {"symbol": meta.symbol, "category": meta.category, "files": [f], "events": ev}
        train.append(Window(name=name, start_ns=int(t[0]), end_ns=int(t[a[-1]]) + 1, **common))
        held.append(Window(name=name, start_ns=int(t[b[0]]), end_ns=int(t[b[-1]]) + 1, **common))
        digests.append(
            {
                "path": str(f),
                "sha256": file_sha256(f),
                "symbol": meta.symbol,
                "category": meta.category,
            }
        )
    return train, held, digests


@dataclass
class TrainResult:
    """What learn_rl learnt: the arrays (rpi in MODE_GREEDY), per-episode curves and the
    held-out comparison."""

    q: np.ndarray
    visits: np.ndarray
    rpi: np.ndarray
    rpf: np.ndarray
    actions: np.ndarray
    curves: dict[str, list[float]]
    holdout: list[dict[str, Any]]


def learn_rl(
    cfg: AppConfig,
    train: list[Window],
    held: list[Window],
    tp: RlTrainParams,
    *,
    runner: EpisodeRunner = run_episode_python,
    eval_runner: EpisodeRunner = run_episode_python,
    progress: bool = False,
) -> TrainResult:
    """Episodes of Q-learning over the training windows (runner), then the held-out
    comparison (eval_runner: the held-out part needs the market state before it, which the
    per-frame driver builds).

    Episode e uses epsilon = rl_epsilon, or decays linearly to epsilon_end at the last one.
    Held out (per window): the greedy policy (MODE_GREEDY on a copy of the table: the
    evaluation learns nothing) against the RL adjustment off (MODE_OFF: plain AS/GLFT).
    """
    from tqdm import tqdm

    q, visits, rpi, rpf, actions = rl_arrays(cfg, krl.MODE_LEARN)
    rng = krl.new_rng(tp.seed)
    eps0 = float(rpf[krl.RPF_EPSILON])
    curves: dict[str, list[float]] = {
        "reward": [],
        "pnl": [],
        "fills": [],
        "epsilon": [],
        "decisions": [],
        "states_visited": [],
    }
    bar = tqdm(range(tp.episodes), desc="episodes", unit="ep", disable=not progress)
    for e in bar:
        if tp.epsilon_end is not None and tp.episodes > 1:
            rpf[krl.RPF_EPSILON] = eps0 + (tp.epsilon_end - eps0) * e / (tp.episodes - 1)
        reward = pnl = 0.0
        fills = decisions = 0
        for w in train:
            out = runner(w, cfg, q, visits, rpi, rpf, actions, krl.new_agent_state(), rng)
            reward += out["reward_sum"]
            pnl += out["pnl"]
            fills += int(out["fills"])
            decisions += int(out.get("decisions", 0))
        curves["reward"].append(reward)
        curves["pnl"].append(pnl)
        curves["fills"].append(float(fills))
        curves["epsilon"].append(float(rpf[krl.RPF_EPSILON]))
        curves["decisions"].append(float(decisions))
        curves["states_visited"].append(float((visits.sum(axis=1) > 0).sum()))
        bar.set_postfix(reward=f"{reward:.1f}", pnl=f"{pnl:.4g}")
    rpf[krl.RPF_EPSILON] = eps0
    rpi[krl.RPI_MODE] = krl.MODE_GREEDY
    holdout = []
    for w in held:
        row: dict[str, Any] = {"recording": w.name}
        for label, mode in (("greedy", krl.MODE_GREEDY), ("off", krl.MODE_OFF)):
            r = rpi.copy()
            r[krl.RPI_MODE] = mode
            out = eval_runner(
                w,
                cfg,
                q.copy(),
                visits.copy(),
                r,
                rpf.copy(),
                actions,
                krl.new_agent_state(),
                krl.new_rng(tp.seed),
            )
            row[label] = {
                k: out[k] for k in ("pnl", "fills", "reward_sum", "decisions") if k in out
            }
            if label == "greedy" and "action_counts" in out:
                row["greedy"]["actions"] = {
                    action_label(g, k): n
                    for (g, k), n in zip(actions.tolist(), out["action_counts"], strict=True)
                    if n
                }
        holdout.append(row)
    return TrainResult(q, visits, rpi, rpf, actions, curves, holdout)


def plot_convergence(curves: dict[str, list[float]], out: Path) -> Path:
    """Reward and PnL per episode (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    ep = np.arange(1, len(curves["reward"]) + 1)
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    ax1.plot(ep, curves["reward"], marker=".", color="C0")
    ax1.set_ylabel("reward sum (tick x lot)")
    ax1.set_title("Q-learning convergence: reward per episode (training part)")
    ax1.grid(alpha=0.3)
    ax2.plot(ep, curves["pnl"], marker=".", color="C2")
    ax2.set_ylabel("PnL (quote)")
    ax2.set_xlabel("episode")
    ax2.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax2.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def save_rl_model(
    out_dir: Path,
    res: TrainResult,
    *,
    mmd_version: str,
    training_data: list[dict[str, str]],
    hyper_parameters: dict[str, Any],
    metrics: dict[str, Any],
) -> ModelMeta:
    """The table as model file kind rl_q (rpi in MODE_GREEDY)."""
    rpi = res.rpi.copy()
    rpi[krl.RPI_MODE] = krl.MODE_GREEDY
    return save_model(
        out_dir,
        kind="rl_q",
        features=list(RL_OBSERVATIONS),
        arrays={
            "q": res.q,
            "visits": res.visits,
            "rpi": rpi,
            "rpf": res.rpf,
            "actions": res.actions,
        },
        mmd_version=mmd_version,
        training_data=training_data,
        hyper_parameters=hyper_parameters,
        metrics=metrics,
    )


def run_train_rl(
    data: list[str],
    out: str,
    sets: list[str],
    config_path: str | None,
    progress: bool,
    echo: Callable[[str], None] = print,
    runner: EpisodeRunner | None = None,
) -> ModelMeta:
    """The `mmd train rl` command: split, episodes, held-out comparison, model + plot.

    runner: the training episodes' runner (None: by the `engine` setting)."""
    from mmd import __version__
    from mmd.config import load_config

    tp, config_sets = parse_rl_sets(sets)
    cfg = load_config(config_path, sets=config_sets)
    return fit_rl(cfg, data, tp, Path(out), __version__, progress, echo, runner=runner)


def train_rl(
    recs: list[Any],
    lp: Any,
    tp: Any,
    out_dir: Path,
    mmd_version: str,
    progress: bool,
    echo: Callable[[str], None],
    cfg: AppConfig | None = None,
) -> ModelMeta:
    """The RL table as `mmd train all` and `mmd evaluate` train every model: from their
    recordings (mmd.learn.cli.Recording: files, and the market series that ends where the
    caller's training part ends), seeded by their `seed`, written to out_dir/rl. lp is not
    used (the RL reward needs no labels); cfg: the [models] rl_* and strategy keys (default:
    the built-in config)."""
    files = [str(f) for r in recs for f in r.files]
    ends = [
        int(r.series.ts_ns[-1]) + 1 if len(r.series.ts_ns) else 0 for r in recs for _ in r.files
    ]
    rtp = RlTrainParams(seed=int(getattr(tp, "seed", 7)))
    return fit_rl(
        cfg or AppConfig(), files, rtp, Path(out_dir), mmd_version, progress, echo, end_ns=ends
    )


def fit_rl(
    cfg: AppConfig,
    data: list[str],
    tp: RlTrainParams,
    out: Path,
    mmd_version: str,
    progress: bool,
    echo: Callable[[str], None],
    *,
    runner: EpisodeRunner | None = None,
    end_ns: list[int] | None = None,
) -> ModelMeta:
    """Split, episodes, held-out comparison, model + plot into out/rl (see the module
    docstring); end_ns: each file's data stops there (a caller's training part)."""
    t0 = dt.datetime.now(dt.UTC)
    mc = cfg.models
    purge_ns = round((mc.rl_step_s if tp.purge_s is None else tp.purge_s) * 1e9)
    train, held, digests = split_windows(cfg, data, tp.n_splits, purge_ns, progress, end_ns)
    models = None
    if mc.adverse or mc.spread:  # quote as the daemon will, the RL state sees the detector
        from mmd.learn.runtime import load_models

        models = load_models(mc.dir, adverse=mc.adverse, spread=mc.spread, missing=mc.missing)
        for w in train + held:
            w.models = models
    out_dir = out / "rl"
    engine = "custom"
    if runner is None:
        runner, engine = _choose_runner(cfg, train, tp.engine, out_dir, echo)
    try:
        res = learn_rl(cfg, train, held, tp, runner=runner, progress=progress)
    finally:  # the training parts the fast runner wrote (their event caches stay cached)
        shutil.rmtree(out_dir / "train_part", ignore_errors=True)
    curves = res.curves
    last = curves["reward"][-min(5, len(curves["reward"])) :]
    metrics = {
        "episodes": tp.episodes,
        "curves": curves,
        "holdout": res.holdout,
        "reward_last_episodes_mean": float(np.mean(last)),
        "states_visited": int((res.visits.sum(axis=1) > 0).sum()),
        "states": int(res.q.shape[0]),
        "cells_visited": int((res.visits > 0).sum()),
        "updates": int(res.visits.sum()),
    }
    keys = {
        k: getattr(mc, k) for k in mc.__struct_fields__ if k.startswith("rl_") and k != "rl_online"
    }
    hyper = {
        "train": msgspec.to_builtins(tp),
        "config": keys,
        "engine": engine,
        "strategy_model": cfg.strategy.model,
        "models_alongside": models.versions() if models is not None else {},
        "windows": [
            {
                "recording": w.name,
                "train_ns": [tw.start_ns, tw.end_ns],
                "holdout_ns": [w.start_ns, w.end_ns],
            }
            for tw, w in zip(train, held, strict=True)
        ],
        "actions": res.actions.tolist(),
        "reward": "dPnL - damp max(0, q dmid) - penalty q^2 / max_lots (tick x lot)",
    }
    meta = save_rl_model(
        out_dir,
        res,
        mmd_version=mmd_version,
        training_data=digests,
        hyper_parameters=hyper,
        metrics=metrics,
    )
    plot = plot_convergence(curves, out_dir / "convergence.png")
    _print_summary(res, metrics, meta, echo)
    secs = (dt.datetime.now(dt.UTC) - t0).total_seconds()
    echo(f"  convergence plot {plot}")
    echo(f"model written to {out_dir} in {secs:.1f} s")
    sys.stdout.flush()
    return meta


def _choose_runner(
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


def _print_summary(
    res: TrainResult, m: dict[str, Any], meta: ModelMeta, echo: Callable[[str], None]
) -> None:
    c = res.curves
    n = len(c["reward"])
    first = c["reward"][: min(5, n)]
    echo(
        f"Q-learning: {n} episodes, {int(sum(c['decisions']))} decisions, {m['updates']} "
        f"updates; {m['states_visited']} of {m['states']} states visited "
        f"({m['cells_visited']} state-action cells)"
    )
    echo(
        f"  reward per episode (tick x lot): first {len(first)} mean "
        f"{float(np.mean(first)):.2f}, last {min(5, n)} mean "
        f"{m['reward_last_episodes_mean']:.2f}"
    )
    echo(f"  {'held out':<40} {'PnL greedy':>12} {'PnL off':>12} {'fills':>11} {'reward':>9}")
    for row in res.holdout:
        g, o = row["greedy"], row["off"]
        echo(
            f"  {row['recording'][:40]:<40} {g['pnl']:>12.4g} {o['pnl']:>12.4g} "
            f"{g['fills']:>5}/{o['fills']:<5} {g.get('reward_sum', math.nan):>9.2f}"
        )
        acts = g.get("actions") or {}
        if acts:
            top = sorted(acts.items(), key=lambda kv: -kv[1])[:5]
            echo("    greedy actions: " + ", ".join(f"{k} x{v}" for k, v in top))
    echo(f"  written {meta.kind}, version {meta.version}")
