"""numba kernels: hot loops as free `@njit(cache=True, nogil=True)` functions over 1-D arrays.

Kernels own no state and do no I/O; they import only numpy, numba, `mmd.kernels.*` and
`mmd.model.codes`, and report failures as codes. Nothing here compiles at import time.
"""
