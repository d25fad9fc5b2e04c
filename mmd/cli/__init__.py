"""The `mmd` command line: the argument parser (parser), the config it names (config_args) and
the command handlers (commands, backtest_cmd); mmd.__main__:main maps their errors to exit codes.
"""

EXIT_OK, EXIT_CRASH, EXIT_CONFIG = 0, 1, 2
