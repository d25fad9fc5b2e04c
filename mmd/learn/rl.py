"""`mmd train rl`: the tabular Q-learning policy, learnt by replaying recordings many times.

Each recording is decoded through the event cache (mmd.feeds.convert.event_cache), which gives
its time span, and cut by time (mmd.learn.dataset.walk_forward_splits, last split): episodes
learn on the earlier blocks, the last block is held out and replayed once greedily and once with
the RL adjustment off, to compare. An episode is one pass over every recording's training part
with the strategy quoting through the RL kernel in MODE_LEARN (epsilon-greedy, seeded); the
Q table, visit counts and generator carry over from episode to episode, the agent's running
state starts afresh with each recording.

The episode runner is injectable (`mmd.learn.rl_episode.EpisodeRunner`): the per-frame path of
`mmd backtest`, exact but slow, or the jitted loop over the training part's event cache, the
same decisions much faster when the state needs nothing that loop lacks. `train_rl` is the
entry `mmd train all` and `mmd evaluate` call, with the other trainers' signature.

Shell: reads recordings, writes the model directory and its convergence plot.
"""

from __future__ import annotations

import datetime as dt
import math
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import msgspec
import numpy as np
import numpy.typing as npt

from mmd.config import AppConfig
from mmd.errors import ConfigError
from mmd.kernels import rl as krl
from mmd.learn.model_file import ModelMeta, save_model
from mmd.learn.rl_episode import (
    EpisodeRunner,
    Window,
    choose_runner,
    rl_arrays,
    run_episode_python,
    split_windows,
)
from mmd.learn.runtime import RL_OBSERVATIONS, action_label
from mmd.learn.sets import split_sets

F64Array = npt.NDArray[np.float64]
I64Array = npt.NDArray[np.int64]


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


@dataclass
class TrainResult:
    """What learn_rl learnt: the arrays (rpi in MODE_GREEDY), per-episode curves and the
    held-out comparison."""

    q: F64Array
    visits: I64Array
    rpi: I64Array
    rpf: F64Array
    actions: F64Array
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
    recordings (mmd.learn.train_data.Recording: files, and the market series that ends where the
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
        from mmd.learn.model_loader import load_models

        models = load_models(mc.dir, adverse=mc.adverse, spread=mc.spread, missing=mc.missing)
        for w in train + held:
            w.models = models
    out_dir = out / "rl"
    engine = "custom"
    if runner is None:
        runner, engine = choose_runner(cfg, train, tp.engine, out_dir, echo)
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
