"""Market state in preallocated numpy arrays: the L2 book and fixed-size ring buffers.

Pure core: no awaits, sockets, files or clock reads; hot loops live in `mmd.kernels`.
"""
