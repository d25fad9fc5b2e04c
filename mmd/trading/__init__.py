"""Trading core: order state machine, portfolio, pre-trade risk and the SQLite ledger.

Pure Python apart from the ledger's SQLite I/O; time always arrives as an argument.
"""
