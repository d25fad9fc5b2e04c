"""CompiledDecision: one symbol's whole decision as one compiled call (rings -> calibration ->
warm-up gate -> quote decision -> order diff, `kernels.frame.decide_symbol_quotes`) and the
buffers it runs on. Pure core; it turns the kernel's command rows into commands, nothing more."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from mmd.errors import InvariantViolation
from mmd.kernels.frame import (
    DI_CODE,
    DI_GATE,
    DI_N_CMDS,
    DI_SIZE,
    ERR_DECIDE_CALIBRATION,
    BookArgs,
    CalArgs,
    QuoteArgs,
    RingArgs,
    decide_symbol_quotes,
)
from mmd.kernels.strategy import CMD_CANCEL, COMMAND_DTYPE
from mmd.market.hub import SymbolState
from mmd.market.ring import RingBuffer
from mmd.model.events import CancelOrder, Command, SubmitOrder
from mmd.strategy.calibration import IntensityCalibrator
from mmd.strategy.order_diff import OpenOrder, orders_array
from mmd.strategy.quoter import Quoter
from mmd.strategy.warmup import WarmupGate

# what decide_symbol_quotes takes over one market state: the mids ring, then its argument groups
_KernelArgs = tuple[tuple[RingBuffer], CalArgs, RingArgs, QuoteArgs, BookArgs]


class CompiledDecision:
    """The compiled decision of one SymbolStrategy, over that strategy's own arrays.

    Args:
        quoter: the symbol's quoter (its kernel arrays).
        calibrator: the intensity calibrator (its window and state arrays).
        gate: the warm-up gate (its deadline; it takes the state the kernel derived).
        cursor: the rows of the mids / trades rings already read (int64[2], shared).
        oid: the next client id number (int64[1], shared with the step-by-step path).
        symbol: the symbol.
        id_prefix: the client order id prefix (the number follows).
        levels: quote levels per side.
    """

    def __init__(
        self,
        quoter: Quoter,
        calibrator: IntensityCalibrator,
        gate: WarmupGate,
        cursor: NDArray[np.int64],
        oid: NDArray[np.int64],
        symbol: str,
        id_prefix: str,
        levels: int,
    ) -> None:
        self.quoter = quoter
        self.calibrator = calibrator
        self.gate = gate
        self.cursor = cursor
        self.oid = oid
        self.symbol = symbol
        self.id_prefix = id_prefix
        self.dec_i = np.zeros(DI_SIZE, np.int64)
        self.cmds = np.zeros(8 + 2 * levels, COMMAND_DTYPE)
        self.done = np.zeros(2 * levels, np.int64)
        self.totals = np.zeros(2, np.int64)
        self.book_counts = np.zeros(2, np.int64)
        # the kernel's argument tuples, bound to one market state's arrays (`bind`)
        self.args: _KernelArgs | None = None

    def bind(self, st: SymbolState) -> _KernelArgs:
        """The kernel's argument tuples over st's and the strategy's arrays (built once per
        market state: the arrays live as long as it)."""
        mids, trades, cal = st.mids, st.trades, self.calibrator
        return (
            (mids,),
            (cal.win, self.cursor, cal.cal_i, cal.cal_f, cal.cal_pi, cal.cal_pf),
            (
                (mids.column("ts_ns"), mids.column("mid_ticks")),
                (
                    trades.column("ts_ns"),
                    trades.column("px_ticks"),
                    trades.column("qty_lots"),
                    trades.column("side"),
                ),
                self.totals,
            ),
            self.quoter.kernel_arrays(),
            (st.book.bid_px, st.book.ask_px, self.book_counts),
        )

    def decide(
        self,
        now_ns: int,
        st: SymbolState,
        open_orders: list[OpenOrder],
        position_lots: int,
        halted: bool,
    ) -> tuple[int, list[Command]]:
        """Run the compiled decision (the quoter's ML inputs already set).

        Returns:
            The decision code (kernels.frame: NO_DECISION, 0 for a target, else the quoter's
            reject code) and the commands to send.

        Raises:
            InvariantViolation: the kernel refused a trade or its buffers.
        """
        args = self.args
        if args is None or args[0][0] is not st.mids:
            args = self.args = self.bind(st)
        cal, rings, quote, book = args[1], args[2], args[3], args[4]
        n_open = len(open_orders)
        orders = orders_array(open_orders)
        if self.cmds.shape[0] < n_open + self.done.shape[0]:
            self.cmds = np.zeros(2 * n_open + self.done.shape[0], COMMAND_DTYPE)
        cmds = self.cmds
        totals = self.totals
        totals[0] = st.mids.total
        totals[1] = st.trades.total
        counts = self.book_counts
        b = st.book
        counts[0] = b.n_bids
        counts[1] = b.n_asks
        dec_i = self.dec_i
        usable = st.sync.synced and not st.stale
        rc = decide_symbol_quotes(
            dec_i,
            cal,
            rings,
            quote,
            book,
            orders,
            cmds,
            (self.oid, self.done),
            now_ns,
            b.ts_exch_ns,
            self.gate.deadline_ns,
            usable,
            halted,
            position_lots,
        )
        if rc == ERR_DECIDE_CALIBRATION:
            raise InvariantViolation(f"calibration trade rejected (code {rc})")
        if rc < 0:
            raise InvariantViolation(f"decision kernel refused its buffers (code {rc})")
        self.gate.set_code(int(dec_i[DI_GATE]))
        out: list[Command] = []
        sym = self.symbol
        prefix = self.id_prefix
        for kind, side, px, qty, oid, _reason in cmds[: int(dec_i[DI_N_CMDS])].tolist():
            if kind == CMD_CANCEL:
                out.append(
                    CancelOrder(client_order_id=open_orders[oid].client_order_id, symbol=sym)
                )
            else:
                out.append(
                    SubmitOrder(
                        client_order_id=f"{prefix}{oid}",
                        symbol=sym,
                        side=side,
                        px_ticks=px,
                        qty_lots=qty,
                    )
                )
        return int(dec_i[DI_CODE]), out
