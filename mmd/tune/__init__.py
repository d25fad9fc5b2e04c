"""`mmd tune`: parameter search over recordings with walk-forward splits.

Core (pure, no I/O): space.py (search space, config keys by name), splits.py (walk-forward
folds by time), objective.py (the score of a backtest summary), search.py (seeded Optuna
ask/tell in fixed-size batches over any concurrent.futures executor). Shell: engine.py (the
backtest a trial runs: config + recordings + window -> summaries), executors.py (local process
pool or Dask), output.py (results files, best.toml, plots), cli.py (the command).

Optuna, Dask's distributed and scikit-learn (the `train` extra) are imported only here, never
by the daemon.
"""
