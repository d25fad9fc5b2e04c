"""The venue's book views: each subscribed `orderbook.N.SYM` topic's top levels, diffed and sent.

Turns source book changes into snapshot/delta frames with their own `u`, and applies the
websocket faults to them (`faults.py` decides, `ws.py` queues); it parses no recording.

Each subscribed `orderbook.{1,50,200,1000}.SYM` topic gets one view (shared by every connection
of that category): its top-`depth` levels and its own `u`, starting at `VIEW_U0` (far from 1, so
a restart is unambiguous). After every source book frame each view with subscribers is diffed;
if its top levels changed, `u += 1` and a `delta` with exactly the changed levels is broadcast
(size changed -> new size, left the view -> "0", entered -> its size). Depth 1 sends `snapshot`
frames only, as Bybit does (the 3 s keep-alive re-send is not reproduced). `data.seq` is always
the seq of the source frame whose application produced the state, so a client can compare with
a book rebuilt offline from the recording at that seq. A (re-)subscription first gets a
`snapshot` of the view with its current `u` (after the ack). Views without subscribers are not
updated (and count no deltas); on re-subscription they are refreshed and `u` is bumped once if
the levels changed meanwhile. A subscription made before the source book's first snapshot gets
its snapshot when that snapshot is applied.
"""

from __future__ import annotations

import structlog

from mmd.venue.faults import FaultPlan
from mmd.venue.market import Market, VenueClock, View
from mmd.venue.ws import Connection, Fanout

# a lazy proxy: the configuration made later by the CLI applies (`.bind()` here would freeze it)
log = structlog.get_logger(component="venue")


class BookViews:
    """Keeps every market's views in step with its source book and sends their frames.

    Args:
        fanout: the connections and subscriptions.
        faults: the configured faults (websocket kinds are applied here).
        clock: the venue clock (snapshot stamps).
    """

    def __init__(self, fanout: Fanout, faults: FaultPlan, clock: VenueClock) -> None:
        self._fanout = fanout
        self._faults = faults
        self._clock = clock

    def snapshot_frame(self, m: Market, view: View, *, now: bool) -> str:
        """A `snapshot` of the view; stamped now (a subscription) or with the source frame."""
        if now:
            ts = m.ts_ms if self._clock.keep else self._clock.now_ms()
        else:
            ts = m.ts_ms + m.shift_ms
        return m.book_frame(view, "snapshot", view.bids.items(), view.asks.items(), ts)

    def update(self, m: Market) -> None:
        """Diff every subscribed view of `m` against its book and send what changed."""
        for view in m.views.values():
            subs = self._fanout.subscribers(m.category, view.topic)
            if not subs:
                view.stale = True
                continue
            new_b, new_a = m.book.top(view.depth)
            if not view.ready:
                view.ready = True
                view.bids, view.asks = new_b, new_a
                frame = self.snapshot_frame(m, view, now=False)
                for c in list(subs):
                    self._fanout.send(c, frame)
                continue
            old_b, old_a = view.bids, view.asks
            db = [(p, q) for p, q in new_b.items() if old_b.get(p) != q]
            db += [(p, 0) for p in old_b if p not in new_b]
            da = [(p, q) for p, q in new_a.items() if old_a.get(p) != q]
            da += [(p, 0) for p in old_a if p not in new_a]
            if not db and not da:
                continue
            db.sort(reverse=True)
            da.sort()
            view.bids, view.asks = new_b, new_a
            self._emit_update(m, view, db, da, list(subs))

    def _emit_update(
        self,
        m: Market,
        view: View,
        db: list[tuple[int, int]],
        da: list[tuple[int, int]],
        subs: list[Connection],
    ) -> None:
        """Broadcast one view update, applying the faults due at this update count."""
        faults = self._faults
        fanout = self._fanout
        view.deltas += 1
        hits = faults.ws_hits(view.deltas)
        if "stall" in hits:
            view.u += 1
            fanout.stall(subs)
            faults.count("stall")
            log.info("venue_connections_stalled", topic=view.topic, connections=len(subs))
            return
        frame: str | None
        reset = False
        if "restart" in hits:
            view.u = 1
            frame = self.snapshot_frame(m, view, now=False)
            reset = True
            faults.count("restart")
            hits -= {"types", "oversized"}
        else:
            view.u += 1
            if "gap" in hits:
                frame = None
                faults.count("gap")
            elif view.depth == 1:
                frame = self.snapshot_frame(m, view, now=False)
            else:
                frame = m.book_frame(view, "delta", db, da, m.ts_ms + m.shift_ms)
        shape = faults.shape(hits, frame) if frame is not None else None
        topic = view.topic
        for c in subs:
            if shape is None or c.stalled or c.closing:
                continue
            for p in shape.pre:
                fanout.send(c, p)
            if reset:
                c.held.pop(topic, None)
            held = c.held.pop(topic, None)
            if shape.reorder and held is None:
                c.held[topic] = shape.frame
                continue
            fanout.send(c, shape.frame)
            if shape.duplicate:
                fanout.send(c, shape.frame)
            if held is not None:
                fanout.send(c, held)
        if "disconnect" in hits:
            faults.count("disconnect")
            for c in subs:
                fanout.close_after_queue(c, 1001, "venue fault: disconnect")

    def subscribe(self, c: Connection, m: Market, depth: int, topic: str) -> None:
        """Bring the view up to date and send its snapshot (or wait for the first source one)."""
        view = m.views.get(depth)
        if view is None:
            view = m.views[depth] = View(depth=depth, topic=topic, ready=m.initialized)
            if view.ready:
                view.bids, view.asks = m.book.top(depth)
        elif view.ready and view.stale:
            new_b, new_a = m.book.top(depth)
            if new_b != view.bids or new_a != view.asks:
                view.u += 1
                view.bids, view.asks = new_b, new_a
        view.stale = False
        c.held.pop(topic, None)
        if view.ready:
            self._fanout.send(c, self.snapshot_frame(m, view, now=True))
