"""`mmd evaluate`: the walk-forward, out-of-sample comparison of the strategies (spec: what is
compared; stats: the arithmetic; split: one split's work; command: the loop; output: files)."""
