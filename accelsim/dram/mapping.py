"""Address mapping: a byte address -> (channel, rank, bank group, bank, row, column burst).

A scheme lists the six fields from the most to the least significant, joined by ``-``;
the address is split (after dropping the offset inside one burst) as a mixed-radix
number whose digits have the sizes of the fields (so channel counts need not be powers
of two). Addresses beyond the capacity wrap (the most significant digit is taken modulo
its size). Named schemes:

- ``row_bank_column`` (default): ``row-rank-bank-column-bankgroup-channel``: consecutive
  bursts go to successive channels, then bank groups (tCCD_S instead of tCCD_L), then
  columns of one row; a row's worth of each bank group is contiguous per channel - the
  usual open-page mapping (Ramulator's RoBaRaCoCh with bank-group bits moved low);
- ``bank_interleaved``: ``row-column-rank-bank-bankgroup-channel``: consecutive bursts
  spread over every bank before returning to a row (most bank-level parallelism, fewest
  row hits on a stream);
- ``row_contiguous``: ``rank-bankgroup-bank-row-column-channel``: whole rows contiguous
  per channel, banks far apart (a linear stream stays in one bank).
"""
from __future__ import annotations

import numpy as np

FIELDS = ("channel", "rank", "bankgroup", "bank", "row", "column")
F_CHANNEL, F_RANK, F_BANKGROUP, F_BANK, F_ROW, F_COLUMN = range(6)
SCHEMES = {
    "row_bank_column": "row-rank-bank-column-bankgroup-channel",
    "bank_interleaved": "row-column-rank-bank-bankgroup-channel",
    "row_contiguous": "rank-bankgroup-bank-row-column-channel",
}
DEFAULT_SCHEME = "row_bank_column"


def parse_scheme(scheme: str | None) -> tuple[str, ...]:
    """Field names from most to least significant; ``ValueError`` (one line) if malformed."""
    text = SCHEMES.get(scheme or DEFAULT_SCHEME, scheme or "")
    parts = tuple(p.strip() for p in text.split("-"))
    if sorted(parts) != sorted(FIELDS):
        raise ValueError(f"expected one of {', '.join(SCHEMES)} or the six fields "
                         f"{', '.join(FIELDS)} joined by '-' (most significant first), got {scheme!r}")
    return parts


def mapping_arrays(scheme: str | None, device, channels: int) -> tuple[np.ndarray, np.ndarray]:
    """``(order, radix)`` for the kernel: field ids least significant first, and each field's size
    (indexed by field id)."""
    names = parse_scheme(scheme)
    order = np.array([FIELDS.index(n) for n in reversed(names)], dtype=np.int64)
    radix = np.array([channels, device.ranks, device.bank_groups, device.banks_per_group,
                      device.rows, device.bursts_per_row], dtype=np.int64)
    return order, radix
