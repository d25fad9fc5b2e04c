"""Integer constants shared with the numba kernels (sides, kernel return codes, frame kinds).

Edit with care: kernels freeze globals at compile time (clear NUMBA_CACHE_DIR after a change).
"""

BUY = 1
SELL = -1

# kernel return codes (negative = failure)
OK = 0
ERR_BOOK_FULL = -1
ERR_BAD_INPUT = -2
ERR_CROSSED = -3

# what a decoded frame is
KIND_UNKNOWN = 0
KIND_BOOK_SNAPSHOT = 1
KIND_BOOK_DELTA = 2
KIND_TRADES = 3
KIND_KLINE = 4
KIND_CONTROL = 5  # subscribe ack, pong
KIND_INSTRUMENTS = 6
KIND_TICKER = 7
