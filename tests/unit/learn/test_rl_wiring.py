"""The RL layer in the live strategy: rl_q model files load (or are refused), the strategy
quotes with the table's action held every step_s, counts it in mmd_rl_action_total, the ledger
records the table's version, and the position limit still stops a side whatever RL says.

Tables are written by hand (known best action), so nothing here needs training.
"""

from __future__ import annotations

from pathlib import Path

import msgspec
import numpy as np
import pytest

from mmd import app as app_mod
from mmd.config import AppConfig, ModelsConfig
from mmd.errors import ConfigError
from mmd.feeds.recording import read_recording
from mmd.feeds.synth_session import write_session
from mmd.frames import FrameHandler
from mmd.kernels import rl as krl
from mmd.learn.model_file import IncompatibleModel, load_model, save_model
from mmd.learn.model_loader import load_models, load_rl_policy
from mmd.learn.runtime import (
    RL_KINDS,
    RL_OBSERVATIONS,
    LoadedModels,
    action_label,
)
from mmd.market.hub import MarketHub
from mmd.metrics import Metrics
from mmd.model.codes import BUY
from mmd.model.events import SubmitOrder
from mmd.quote_models import load_quote_models
from mmd.strategy.engine import SymbolStrategy
from mmd.strategy.quoter import NEUTRAL
from mmd.trading.risk import RiskGate

S = 1_000_000_000


@pytest.fixture(scope="module")
def synth_rec(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """60 simulated seconds of the default synthetic BTCUSDT market."""
    ((rec, _),) = write_session(AppConfig(), tmp_path_factory.mktemp("rlsyn"), 60.0)
    return rec


def write_table(
    root: Path, best: tuple[float, float], *, tried: bool = True, step_s: float = 5.0
) -> Path:
    """A table whose best tried action in every state is `best` (gamma mult, skew)."""
    rpi, rpf = krl.make_params((5, 3, 3, 3, 2), round(step_s * S), krl.MODE_GREEDY)
    actions = krl.default_actions()
    k = actions.tolist().index(list(best))
    q = np.zeros((krl.n_states(rpi), len(actions)))
    q[:, k] = 1.0
    visits = np.full(q.shape, 1 if tried else 0, np.int64)
    save_model(
        root / "rl",
        kind="rl_q",
        features=list(RL_OBSERVATIONS),
        arrays={"q": q, "visits": visits, "rpi": rpi, "rpf": rpf, "actions": actions},
        mmd_version="test",
        hyper_parameters={"episodes": 0},
    )
    return root


def _cfg(models_dir: Path, **models: object) -> AppConfig:
    return msgspec.structs.replace(AppConfig(), models=ModelsConfig(dir=str(models_dir), **models))  # type: ignore[arg-type]


def test_rl_model_file_round_trip_modes_and_copies(tmp_path: Path) -> None:
    write_table(tmp_path, (0.5, 1.0))
    meta, arrays = load_model(tmp_path / "rl", RL_KINDS, RL_OBSERVATIONS)
    p = load_rl_policy(tmp_path / "rl")
    assert p.version == meta.version and len(p.version) == 16
    assert int(p.rpi[krl.RPI_MODE]) == krl.MODE_GREEDY and not p.online
    assert p.step_ns == 5 * S and p.q.shape == (270, 20)
    p.q[0, 0] = 99.0  # a copy: the file and another load are untouched
    assert load_rl_policy(tmp_path / "rl").q[0, 0] == 0.0
    on = load_rl_policy(
        tmp_path / "rl", online=True, learning={"alpha": 0.3, "epsilon": 0.05, "penalty": 2.0}
    )
    assert int(on.rpi[krl.RPI_MODE]) == krl.MODE_LEARN and on.online
    assert (on.rpf[krl.RPF_ALPHA], on.rpf[krl.RPF_EPSILON], on.rpf[krl.RPF_INV_PENALTY]) == (
        0.3,
        0.05,
        2.0,
    )
    assert on.rpf[krl.RPF_DISCOUNT] == arrays["rpf"][krl.RPF_DISCOUNT]  # not overridden
    assert p.labels[0] == "g1_s0" and action_label(0.25, -2.0) == "g0.25_s-2"


def _save(root: Path, **arrays: np.ndarray) -> Path:
    rpi, rpf = krl.make_params((2, 1, 1, 1, 1), 5 * S, krl.MODE_GREEDY)
    base = {
        "q": np.zeros((2, 3)),
        "visits": np.zeros((2, 3), np.int64),
        "rpi": rpi,
        "rpf": rpf,
        "actions": np.array([[1.0, 0.0], [2.0, 1.0], [0.5, -1.0]]),
    }
    base.update(arrays)
    save_model(root, kind="rl_q", features=list(RL_OBSERVATIONS), arrays=base, mmd_version="test")
    return root


@pytest.mark.parametrize(
    ("arrays", "words"),
    [
        ({"q": np.zeros((3, 3))}, "q (3, 3)"),  # 2 states x 3 actions expected
        ({"visits": np.zeros((2, 3))}, "visits"),  # float counts
        ({"q": np.array([[0.0, np.nan, 0.0], [0.0, 0.0, 0.0]])}, "finite"),
        ({"actions": np.array([[1.0, 0.0], [0.0, 1.0], [0.5, -1.0]])}, "action grid"),  # gamma 0
        ({"rpi": np.zeros(3, np.int64)}, "parameter arrays"),
    ],
)
def test_rl_model_file_refuses_inconsistent_tables(
    tmp_path: Path, arrays: dict[str, np.ndarray], words: str
) -> None:
    with pytest.raises(IncompatibleModel, match=words.replace("(", r"\(").replace(")", r"\)")):
        load_rl_policy(_save(tmp_path / "m", **arrays))


def test_rl_model_file_refuses_edits_other_kinds_and_absence(tmp_path: Path) -> None:
    d = _save(tmp_path / "m")
    load_rl_policy(d)
    # other weights under the same model.json: the content hash no longer matches
    _save(tmp_path / "other", q=np.ones((2, 3)))
    (d / "weights.npz").write_bytes((tmp_path / "other" / "weights.npz").read_bytes())
    with pytest.raises(IncompatibleModel, match="do not match version"):
        load_rl_policy(d)
    with pytest.raises(IncompatibleModel, match="kind 'rl_q'"):
        load_model(_save(tmp_path / "x"), ("adverse_logistic",), RL_OBSERVATIONS)
    with pytest.raises(IncompatibleModel, match=r"models\.rl: .*nothing"):
        load_models(tmp_path / "nothing", adverse=False, spread=False, rl=True, missing="error")
    assert issubclass(IncompatibleModel, ConfigError)  # exit 2
    told: list[str] = []
    m = load_models(
        tmp_path / "nothing",
        adverse=False,
        spread=False,
        rl=True,
        missing="neutral",
        on_missing=lambda name, reason: told.append(name),
    )
    assert told == ["rl"] and m.rl is None and not m.active


def _replay(
    rec: Path,
    strats: list[SymbolStrategy] | None,
    models: LoadedModels | None,
    position_lots: int = 0,
) -> tuple[list[SymbolStrategy], list[tuple[int, object]]]:
    """Step a strategy after every synced book frame (pos fixed); returns it and per-decision
    (now_ns, ml)."""
    cfg = AppConfig()
    hub = MarketHub(["BTCUSDT"], cfg.market, features_cfg=cfg.features)
    out: list[SymbolStrategy] = strats or []
    seen = []
    for ts, raw in read_recording(rec):
        hub.on_frame(raw, ts)
        st = hub.states.get("BTCUSDT")
        if st is None or not st.sync.synced:
            continue
        if not out:
            out.append(SymbolStrategy(cfg.strategy, st.instrument, ts, models))
        strat = out[0]
        strat.step(ts, st, [], position_lots, pnl_quote=0.0)
        if strat.target is not None:
            seen.append((ts, strat.ml))
    return out, seen


def test_strategy_quotes_with_the_held_action_and_counts_each_decision(
    synth_rec: Path, tmp_path: Path
) -> None:
    policy = load_rl_policy(write_table(tmp_path, (0.5, 1.0)) / "rl")
    (strat,), seen = _replay(synth_rec, None, LoadedModels(rl=policy))
    (plain,), seen_plain = _replay(synth_rec, None, None)
    assert len(seen) > 500 and len(seen) == len(seen_plain)
    # every decision quotes with the table's best action: gamma x0.5, skew +1 tick
    assert all((ml.gamma_mult, ml.skew_ticks) == (0.5, 1.0) for _, ml in seen)
    assert all(ml is NEUTRAL for _, ml in seen_plain)
    # ... and that moves the quotes: the targets differ from plain AS
    assert strat.target != plain.target
    # decisions are dense (a book frame every ~50 ms), so the 5 s grid from the first one
    # decides floor((last - first) / 5 s) + 1 times
    ts = [t for t, _ in seen]
    assert strat.rl is not None
    assert int(strat.rl.counts.sum()) == (ts[-1] - ts[0]) // (5 * S) + 1
    k = policy.labels.index("g0.5_s1")
    assert strat.rl.counts[k] == strat.rl.counts.sum()
    # exported as mmd_rl_action_total{action}
    m = Metrics()
    m.bind_strategies({"BTCUSDT": strat})
    text = m.render().decode()
    assert f'mmd_rl_action_total{{action="g0.5_s1"}} {float(strat.rl.counts[k])}' in text


def test_untried_states_quote_the_plain_model(synth_rec: Path, tmp_path: Path) -> None:
    # a table with values but no visits: greedy never acts on an untried value
    policy = load_rl_policy(write_table(tmp_path, (2.0, -2.0), tried=False) / "rl")
    (strat,), seen = _replay(synth_rec, None, LoadedModels(rl=policy))
    assert all(ml.gamma_mult == 1.0 and ml.skew_ticks == 0.0 for _, ml in seen)
    assert strat.rl is not None and strat.rl.counts[0] == strat.rl.counts.sum() > 0


def test_rl_never_overrides_the_position_limit(synth_rec: Path, tmp_path: Path) -> None:
    """The most bid-aggressive action (gamma x0.25, skew +2 ticks) at a long position on the
    limit: the quote kernel gives no bid, so no buy is sent; and a buy the gate sees at the
    limit is refused. RL changes prices only; the limits are checked after it."""
    policy = load_rl_policy(write_table(tmp_path, (0.25, 2.0)) / "rl")
    cfg = AppConfig()
    hub = MarketHub(["BTCUSDT"], cfg.market, features_cfg=cfg.features)
    strat = None
    sides = []
    for ts, raw in read_recording(synth_rec):
        hub.on_frame(raw, ts)
        st = hub.states.get("BTCUSDT")
        if st is None or not st.sync.synced:
            continue
        if strat is None:
            strat = SymbolStrategy(cfg.strategy, st.instrument, ts, LoadedModels(rl=policy))
            max_lots = st.instrument.limit_lots(cfg.strategy.max_position)
        cmds = strat.step(ts, st, [], max_lots, pnl_quote=0.0)
        if strat.target is not None:
            assert strat.ml.skew_ticks == 2.0 and strat.ml.gamma_mult == 0.25
            sides.append((strat.target.bids, strat.target.asks))
            assert not any(isinstance(c, SubmitOrder) and c.side == BUY for c in cmds)
    assert len(sides) > 500
    assert all(bids == [] and asks for bids, asks in sides)
    assert strat is not None
    gate = RiskGate(cfg.risk, cfg.strategy.max_position, [strat.instrument])
    buy = SubmitOrder(
        client_order_id="x",
        symbol="BTCUSDT",
        side=BUY,
        px_ticks=int(sides[-1][1][0][0]) - 3,
        qty_lots=1,
    )
    allowed, rejected = gate.check(
        "BTCUSDT",
        [buy],
        now_ns=0,
        position_lots=max_lots,
        open_buy_lots=0,
        open_sell_lots=0,
        book_stale=False,
    )
    assert allowed == [] and [r.reason for r in rejected] == ["max_position"]


def test_ledger_and_metrics_record_the_rl_version(tmp_path: Path) -> None:
    models = write_table(tmp_path / "models", (0.5, 1.0))
    cfg = msgspec.structs.replace(
        _cfg(models, rl=True, rl_online=True, rl_alpha=0.25),
        state=msgspec.structs.replace(AppConfig().state, dir=str(tmp_path / "state")),
    )
    metrics = Metrics()
    trader = app_mod.build_trader(cfg, MarketHub(["BTCUSDT"], cfg.market), ledger=True)
    try:
        m = load_quote_models(cfg, trader, 1, metrics=metrics)
        assert m is not None and m.rl is not None and m.adverse is None
        assert m.rl.online and m.rl.rpf[krl.RPF_ALPHA] == 0.25
        version = m.versions()["rl"]
        assert trader.ledger is not None
        assert trader.ledger.model_versions() == {"rl": version}
    finally:
        assert trader.ledger is not None
        trader.ledger.close()
    assert f'mmd_model_info{{model="rl",version="{version}"}} 1.0' in metrics.render().decode()
    # off by default: nothing loaded
    assert load_quote_models(_cfg(models), None, 1) is None


def test_online_learning_updates_the_table_in_memory_only(synth_rec: Path, tmp_path: Path) -> None:
    """[models] rl_online: the daemon's path (FrameHandler -> Trader -> SymbolStrategy) learns
    into the loaded copy, with the symbol's PnL from the portfolio as the reward's; the file
    keeps the trained table."""
    models_dir = write_table(tmp_path, (1.0, 0.0), step_s=1.0)
    cfg = _cfg(models_dir, rl=True, rl_online=True, rl_alpha=0.5, rl_epsilon=0.5)
    m = load_quote_models(cfg, None, 0)
    assert m is not None and m.rl is not None and m.rl.online
    hub = MarketHub(["BTCUSDT"], cfg.market, features_cfg=cfg.features)
    trader = app_mod.build_trader(cfg, hub, ledger=False)
    trader.models = m
    handler = FrameHandler(hub, None, None, trader, quote_inline=True)
    for ts, raw in read_recording(synth_rec):
        handler(raw, ts)
    strat = trader.strategies["BTCUSDT"]
    assert strat.rl is not None and trader.fills
    # a decision a second over ~55 s of quoting: every step but the first is an update
    decisions = int(strat.rl.rs[krl.RS_DECISIONS])
    assert decisions > 40 and int(m.rl.visits.sum()) == visits_before(models_dir) + decisions - 1
    assert np.count_nonzero(m.rl.q[:, 1:]) > 0  # exploration tried, and valued, other actions
    # the reward saw the portfolio's PnL: the last decision's PnL is the symbol's at that time
    assert strat.rl.rs[krl.RS_PNL] != 0.0
    assert len(np.unique(strat.rl.counts.nonzero()[0])) > 3  # epsilon 0.5 explores
    fresh = load_rl_policy(models_dir / "rl")
    assert fresh.version == m.rl.version and int(fresh.visits.sum()) == visits_before(models_dir)


def visits_before(models_dir: Path) -> int:
    """The trained table's visit count, read from the file."""
    _, arrays = load_model(models_dir / "rl", RL_KINDS, RL_OBSERVATIONS)
    return int(arrays["visits"].sum())
