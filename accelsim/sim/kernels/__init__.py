"""Numba kernels of the simulator: arrays and scalars in, arrays out.

- ``bitops``: ``popcount64`` and set bits of packed rows;
- ``schedule``: the fold recurrence of the ``fast`` fidelity (sync groups, PE activity);
- ``mapped_cycle``: the event-driven run of the ``cycle`` fidelity.

The tests compare each with a plain-Python reference (``tests/naive.py``,
``tests/cycle_mapped_reference.py``); flags come from :mod:`accelsim.numba_config`.
"""
