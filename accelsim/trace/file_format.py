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

Optional in version 2 (traces captured before it say their between-layer ops are
unknown): the metadata mapping ``"graph"``, the forward's data flow (see
:mod:`accelsim.trace.graph`)::

    "graph": {"tensors": [{"id", "shape", "elements", "per_sample", "source",
                           "producer", "alias_of", "inplace_of", "density", "has_mask"}],
              "ops": [{"index", "kind", "op", "name", "inputs", "outputs", "layer",
                       "params", "inplace", "attrs"}],
              "outputs": [tensor id, ...]}

with, for every tensor whose ``has_mask`` is true, the member
``graph/tensor_TTTTT_mask.npy``: uint8 (N, ceil(elements / 8)), its non-zero mask per
sample. Tensor ids are list positions; an op reads only tensors produced before it,
and a tensor's producer lists it among its outputs (checked on open).

Masks are ``np.packbits`` (big bit order) of the C-order flattening: one row per
sample of the unpadded input activations (C, H, W); the whole weight tensor
(K, C/groups, R, S). Bit set = operand non-zero. Members are zip-deflated, except
(since the block reader) mask rows that deflate would shrink by less than 4x (the
packed bits of sparse activations: about 2x, at ~3.5 ns per byte to inflate on every
read), which the writer stores; ``write_trace(compress=False)`` (``--no-compress``)
stores every member. Any member may be stored or deflated: readers handle both, so
traces written before this choice read unchanged. Every member is a plain ``.npy``
array read with ``allow_pickle=False``, so nothing in a trace can run code.

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
     "members": {member name: {"sha256": hex, "bytes": int}},
     "metadata_sha256": hex}   # SHA-256 of the canonical JSON of the rest (checked if present)

Each member's SHA-256 (of its uncompressed bytes) is checked when it is read, on top of
the ZIP CRC, once per open trace and member (later reads of a verified member skip the
hash): a partial read (``samples`` below ``N``, or samples ``[start, stop)``) returns its
rows only after the rest of the member has been streamed through the hash; a block-wise
pass (``LayerTrace.act_blocks``) reads the member once, hashing as it goes, and raises
from the iteration, before it ends, when the hash does not match. A member without a
recorded SHA-256 is refused.

Limits, checked before anything is allocated (a trace is a stranger's file): the
metadata is at most :data:`MAX_METADATA_BYTES`; every member's declared size and its
``.npy`` header shape must equal what the layer geometry and sample count imply; a
layer has at most :data:`MAX_SAMPLES` samples, each dimension at most :data:`MAX_DIM`
and each per-sample tensor (input, weights, output) at most :data:`MAX_ELEMENTS`
elements. ``act_bits``/``weight_bits`` are integers from 1 to 32 and every density in
[0, 1]. The trace's ``content_hash`` is the SHA-256 of
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

MAX_METADATA_BYTES = 64 << 20   # ~1 KiB per layer: room for tens of thousands of layers
MAX_SAMPLES = 1 << 20
MAX_DIM = 1 << 20               # any single geometry field (C, H, K, R, stride, ...)
MAX_ELEMENTS = 1 << 30          # per-sample elements of one tensor (C*H*W, K*C/g*R*S, K*P*Q)


def geometry_limit_error(geometry) -> str | None:
    """Why ``geometry`` (a ``LayerGeometry``) is beyond the hard limits, or ``None``."""
    for name in ("N", "C", "H", "W", "K", "R", "S", "stride_h", "stride_w", "pad_h", "pad_w",
                 "dil_h", "dil_w", "groups"):
        value = getattr(geometry, name)
        limit = MAX_SAMPLES if name == "N" else MAX_DIM
        if value > limit:
            return f"{name} = {value:,} is above the limit of {limit:,}"
    g = geometry
    for what, count in (("input", g.C * g.H * g.W), ("weight", g.K * g.c_per_group * g.R * g.S),
                        ("output", g.K * g.P * g.Q)):
        if count > MAX_ELEMENTS:
            return (f"the {what} tensor has {count:,} elements per sample, above the limit of "
                    f"{MAX_ELEMENTS:,}")
    return None


#: int64 (graph tensors, samples): each masked tensor's non-zeros per sample, -1 for the others
#: (written since the member appeared; older traces lack it and readers count the masks).
GRAPH_NONZEROS_MEMBER = "graph/nonzeros.npy"


def graph_member(tensor_id: int) -> str:
    """Member name of one graph tensor's mask rows, e.g. ``graph/tensor_00012_mask.npy``."""
    return f"graph/tensor_{tensor_id:05d}_mask.npy"


def layer_member(index: int, what: str) -> str:
    """Member name of one per-layer array, e.g. ``layers/0003/act_mask.npy``."""
    return f"layers/{index:04d}/{what}.npy"
