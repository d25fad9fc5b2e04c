"""Integer constants shared with the numba kernels (sides, kernel return codes, frame kinds).

Edit with care: kernels freeze globals at compile time (clear NUMBA_CACHE_DIR after a change).
"""

# time: every timestamp is int64 nanoseconds since the Unix epoch (UTC)
NS_PER_S = 1_000_000_000
NS_PER_DAY = 86_400 * NS_PER_S

BUY = 1
SELL = -1

# kernel return codes (negative = failure)
OK = 0
ERR_BOOK_FULL = -1
ERR_BAD_INPUT = -2
ERR_CROSSED = -3
ERR_FULL = -4  # a preallocated buffer (commands, events) has no room

# what a decoded frame is
KIND_UNKNOWN = 0
KIND_BOOK_SNAPSHOT = 1
KIND_BOOK_DELTA = 2
KIND_TRADES = 3
KIND_KLINE = 4
KIND_CONTROL = 5  # subscribe ack, pong
KIND_INSTRUMENTS = 6
KIND_TICKER = 7

# event cache (mmd.feeds.convert.events): what a row of the merged event stream is
EV_BOOK = 1  # index into the book frame table
EV_TRADE = 2  # index into the trade arrays
EV_KLINE = 3  # index into the kline arrays
EV_TICKER = 4  # index into the ticker arrays
EV_INSTRUMENT = 5  # index into the instrument arrays

# book frame / level row flags (bits)
BOOK_SNAPSHOT = 1  # the frame replaces the book (WS snapshot or REST book)
BOOK_REST = 2  # the frame came from REST (an older REST snapshot is dropped)
BOOK_BAD = 4  # levels the instrument refused (corrupt): applying it means a resync
BOOK_FRAME_START = 8  # first level row of its frame
BOOK_FRAME_END = 16  # last level row of its frame

# instrument row flags
INST_NEW = 1  # first instrument of the symbol: its state starts here
INST_CHANGED = 2  # tick or lot changed: the symbol's state starts afresh

# book sync actions (values of mmd.feeds.book_sync.SyncAction), plus the bad-frame outcome
SYNC_APPLY_SNAPSHOT = 1
SYNC_APPLY_DELTA = 2
SYNC_DROP = 3
SYNC_RESYNC = 4
SYNC_BAD_FRAME = 5  # an applicable frame with refused levels: resync
SYNC_CROSSED = 6  # applied, but the book came out crossed: resync
