"""A hardware description resolved once: the one architecture object a simulation reads.

:func:`resolve` turns a :class:`~accelsim.hw.schema.HardwareConfig` into a :class:`Design`
holding everything derived from it that planning, sizing, mapping and both fidelities read:
the storage levels (the ``memory_hierarchy``, or the flat shorthand expanded), the energy
model, the loop-nest :class:`~accelsim.map.arch.Arch` (designs with a hierarchy), the bytes of
the shared level that would keep each tensor, the DRAM link in bytes per cycle and the shared
port. ``simulate`` resolves once at its top and passes the ``Design`` down; every function
that takes a design accepts either form (``resolve`` of a ``Design`` is itself), so a size, a
cost or a level is derived in one place and read everywhere else.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from accelsim.hw.schema import HardwareConfig, StorageLevel

#: Tensors a shared level can keep, as ``memory_hierarchy[].keeps`` names them.
TENSORS = ("weights", "inputs", "outputs")


@dataclass(frozen=True, eq=False)
class Design:
    """A :class:`HardwareConfig` with what is derived from it, computed once (:func:`resolve`)."""

    hw: HardwareConfig
    levels: tuple[StorageLevel, ...]          # on-chip storage, outermost first
    energy: object                            # accelsim.hw.energy.EnergyModel
    capacity: Mapping[str, float | None]      # shared bytes keeping a tensor (None: unbounded)
    dram_bytes_per_cycle: float | None        # None: ideal DRAM
    shared_bytes: float                       # bytes of shared on-chip storage
    shared_port: tuple[float | None, int]     # (words per cycle, bits per word)
    _arch: list = field(default_factory=list, repr=False)

    @property
    def mapped(self) -> bool:
        """Whether the design runs on the loop-nest model (it states a ``memory_hierarchy``)."""
        return self.hw.memory_hierarchy is not None

    @property
    def arch(self):
        """The loop-nest :class:`~accelsim.map.arch.Arch` (built on first use; raises a
        :class:`~accelsim.errors.ConfigError` for a design without a ``memory_hierarchy``)."""
        if not self._arch:
            from accelsim.map.arch import arch_of

            self._arch.append(arch_of(self.hw, self.energy))
        return self._arch[0]

    @property
    def name(self) -> str:
        return self.hw.name


_RESOLVED: dict[str, Design] = {}
_LIMIT = 64


def resolve(hw: HardwareConfig | Design) -> Design:
    """The :class:`Design` of ``hw`` (``hw`` itself when it is one), kept per design hash."""
    if isinstance(hw, Design):
        return hw
    key = hw.hash        # the SHA-256 of the resolved description: equal hash, equal design
    design = _RESOLVED.get(key)
    if design is None:
        design = _build(hw)
        if len(_RESOLVED) >= _LIMIT:
            _RESOLVED.pop(next(iter(_RESOLVED)))
        _RESOLVED[key] = design
    return design


def hardware(hw: HardwareConfig | Design) -> HardwareConfig:
    """The :class:`HardwareConfig` of a design in either form."""
    return hw.hw if isinstance(hw, Design) else hw


def _build(hw: HardwareConfig) -> Design:
    from accelsim.hw.energy import energy_model

    if hw.memory_hierarchy is None:   # a flat form built without the loader: the one model too
        from accelsim.hw.port import port

        hw = port(hw, hw.name)
    from accelsim.hw.hierarchy import levels_of, shared_bytes, shared_port
    from accelsim.sim.memory import dram_bytes_per_cycle

    levels = levels_of(hw)
    return Design(hw=hw, levels=levels, energy=energy_model(hw),
                  capacity={t: _capacity(levels, t) for t in TENSORS},
                  dram_bytes_per_cycle=dram_bytes_per_cycle(hw), shared_bytes=shared_bytes(hw),
                  shared_port=shared_port(hw))


def _capacity(levels: tuple[StorageLevel, ...], tensor: str) -> float | None:
    """Bytes of the outermost shared level keeping ``tensor`` (None: unbounded; 0: none keeps
    it). The flat shorthand expands to one shared level keeping every tensor."""
    for level in levels:
        if level.instances == "one" and tensor in level.keeps:
            return None if level.size_bytes is None else float(level.size_bytes)
    return 0.0
