"""Numba kernels of the simulator: arrays and scalars in, arrays out.

- ``im2col``: im2col codes of an activation mask, code counts;
- ``bitops``: bit packing and the AND + popcount work-count kernel;
- ``schedule``: the fold recurrence of the ``fast`` fidelity (sync groups, PE activity);
- ``cycle``: the cycle-level model of the ``cycle`` fidelity.

Each has a plain-Python reference in ``tests/naive.py``; flags come from
:mod:`accelsim.numba_config`.
"""
