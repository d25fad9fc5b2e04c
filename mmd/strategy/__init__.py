"""Strategy: model inputs + position -> quote kernels -> QuoteTarget -> order commands.

Pure core: no awaits, sockets, files or clock reads (time arrives as `now_ns`); the hot
arithmetic lives in `mmd.kernels.quotes`.
"""
