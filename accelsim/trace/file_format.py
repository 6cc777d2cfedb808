"""The trace file format, schema version 2 (reads 1 and 2).

A trace file (extension ``.trace`` by convention; any name works) is a ZIP
container, so ``np.load(path, allow_pickle=False)`` can open it too. Members
(``IIII`` = the layer index, zero-padded to 4 digits)::

    layers/IIII/weight_mask.npy               uint8 (ceil(K*C/g*R*S / 8),)   captured only
    layers/IIII/act_mask.npy                  uint8 (N, ceil(C*H*W / 8))     captured only
    layers/IIII/act_density_per_channel.npy   float64 (C,)                   captured only
    layers/IIII/act_density_per_sample.npy    float64 (N,)                   captured only
    layers/IIII/weight_density_per_filter.npy float64 (K,)                   captured only
    layers/IIII/act_density.npy               float64 (C,)   statistical, per_channel model only
    layers/IIII/weight_density.npy            float64 (K,)   statistical, per_channel model only
    layers/IIII/out_mask.npy                  uint8 (N, ceil(K*P*Q / 8))     optional (v2)
    metadata.json                             written last (see below)

Version 2 adds, all optional so version-1 traces read unchanged: the ``matmul``
layer kind (a product of two activations, see ``geometry``), whose
``weight_mask.npy`` is then uint8 (N, ceil(K*C/g / 8)), one row per sample (its
second operand is an activation); ``out_mask.npy``, the outputs the model needs
(attention's causal/attn mask; absent = all); and the metadata list ``"untraced"``
of compute capture saw but did not trace (``{"name", "op", "calls", "macs"}``,
``macs`` summed over the ``num_samples`` samples).

Masks are ``np.packbits`` (big bit order) of the C-order flattening: one row per
sample of the unpadded input activations (C, H, W); the whole weight tensor
(K, C/groups, R, S). Bit set = operand non-zero. Members are zip-deflated unless
the writer was asked not to compress; every member is a plain ``.npy`` array read
with ``allow_pickle=False``, so nothing in a trace can run code.

``metadata.json`` holds::

    {"format": "accelsim-trace", "schema_version": 2, "statistical": bool,
     "num_samples": N, "seed": int | null,
     "provenance": {model, checkpoint, checkpoint_sha256, dataset, num_samples,
                    capture_options, accuracy, accelsim_version, created, ...},
     "layers": [{"index", "name", "geometry": LayerGeometry.to_dict(),
                 "act_bits", "weight_bits", "output_density",
                 "stats": {"act_density", "weight_density", "output_density"},
                 "density_model": {"act": {"model", "density"?},
                                   "weight": {...}}          # statistical only
                }, ...],
     "untraced": [{"name", "op", "calls", "macs"}, ...],        # optional (v2)
     "members": {member name: {"sha256": hex, "bytes": int}}}

Each member's SHA-256 (of its uncompressed bytes) is checked whenever a member is
read whole, on top of the ZIP CRC. The trace's ``content_hash`` is the SHA-256 of
the canonical JSON of this metadata without ``provenance.created``: it changes
when any member or any metadata changes, not when the same content is re-written.
Reading layer ``i`` opens only layer ``i``'s members.
"""
from __future__ import annotations

FORMAT_NAME = "accelsim-trace"
SCHEMA_VERSION = 2
#: Versions this accelsim reads. Version 2 only adds optional records to version 1,
#: so a version-1 trace reads unchanged.
READABLE_VERSIONS = (1, 2)
METADATA_MEMBER = "metadata.json"
FILE_SUFFIX = ".trace"


def layer_member(index: int, what: str) -> str:
    """Member name of one per-layer array, e.g. ``layers/0003/act_mask.npy``."""
    return f"layers/{index:04d}/{what}.npy"
