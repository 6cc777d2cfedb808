"""Mapping-aware model: loop nests of layers, mappings onto a memory hierarchy, access counts.

Pipeline (one idea per module): ``nest`` (a layer as a loop nest and its tensor projections)
-> ``arch`` (storage levels, instances, fan-out, from the hardware description) -> ``mapping``
(the value object: spatial unrolling plus per-level temporal factors and loop order) ->
``access`` (per-level, per-tensor reads/fills/updates from a mapping) -> ``mapper`` (search of
the dataflow-constrained mapspace, cached) -> ``sparse`` (work per PE and step from the real
masks) -> ``cost`` (energy and latency from counts).
"""
