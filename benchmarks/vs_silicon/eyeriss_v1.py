"""accelsim against Eyeriss v1 silicon: AlexNet CONV1-5, JSSC 2017 Table V.

The published figures, their sources and units are in
``tests/fixtures/silicon/eyeriss_v1_jssc2017.json`` (read from there, never typed here).
The workload is the one the chip ran (Table III): the grouped original AlexNet (CONV2, CONV4,
CONV5 in 2 filter groups) with the padded inputs Table III lists (227, 31, 15, 15, 15), a batch
of 4, 16-bit data. Densities: each layer's input at the published ifmap zeros, uniform over the
map; weights dense; each layer's stored output at the next layer's input density (what the chip
run-length codes on its way to DRAM is its post-ReLU output; the next layer's input, after
pooling and normalisation, is the nearest published figure); CONV5's output is left dense (no
published figure).

Two accelsim runs on ``hw_configs/eyeriss_v1.yaml``, ``fast`` fidelity, batch 4:

- ``mapper``: accelsim's own row-stationary mapper on every layer;
- ``published``: the chip's own mappings (Table III) written as accelsim fixed mappings,
  CONV1-CONV5. CONV1's 7-row PE set strip-mines 55 output rows (8 passes, the last with 6: a
  remainder tile) and CONV2's 5 x 27 PE set is folded onto the 12 x 14 array (27 rows as 2 x 14,
  one padded), as the chip does.

Units are the paper's (Table V, batch of 4): processing latency in ms; DRAM and global-buffer
accesses in MB = 10^6 bytes read plus written (one access of the abstract is a 16-bit word, see
the fixture's ``units``); power in mW, accelsim's on-chip energy (everything but DRAM) over its
own latency. Ratios are accelsim / silicon.

    python benchmarks/vs_silicon/eyeriss_v1.py                 # markdown tables (~5 s)
    python benchmarks/vs_silicon/eyeriss_v1.py --json out.json
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "silicon" / "eyeriss_v1_jssc2017.json"
HW_PATH = ROOT / "hw_configs" / "eyeriss_v1.yaml"
QUANTITIES = ("latency", "dram", "glb", "power")
LABELS = {"latency": "processing latency (ms)", "dram": "DRAM accesses (MB)",
          "glb": "GLB accesses (MB)", "power": "on-chip power (mW)"}
SEED = 0

# The chip's mappings (JSSC 2017 Table III: m n e p q r t) in accelsim's mapping format, where
# they can be expressed. Array: X (14 columns) = e ofmap rows; Y (12 rows) = R filter rows x the
# r sets on different channels x the t sets on different filters. Per PE: q channels x S taps of
# p filters (filter scratchpad p*q*S words), the p psums of one ofmap pixel (psum scratchpad),
# q*S ifmap values (ifmap scratchpad); the PE's 1-D convolution slides along Q at the global
# buffer; the n = 4 images of a pass share the weights in the scratchpads (N inside the global
# buffer). The global buffer holds the psums of m = 64 filters x 4 images (84.5 KiB, Table III)
# while the channel passes (C at DRAM, innermost) accumulate into them; filters bypass it.
PUBLISHED_MAPPINGS = {
    "version": 1,
    "layers": {
        # PE set R 11 x e 7 ofmap rows, t = 2 sets on different filters side by side (X: P7 x K2,
        # 154 PEs); E 55 strip-mined into 8 passes of 7 rows (the last has 6: a remainder);
        # K 96 = 3 (glb, m = 96 psums held) x 2 (t) x 16 (p); one channel at a time (q = r = 1,
        # C at DRAM innermost: the glb keeps 35 input rows x 227 of one channel, 15.5 KiB, and
        # the 96 x 7 x 55 psums, 72.2 KiB); one image per pass (n = 1)
        "conv1": [
            {"level": "DRAM", "temporal": [["N", 4], ["P", 8], ["C", 3]]},
            {"level": "glb", "temporal": [["K", 3], ["Q", 55]],
             "spatial": [["K", 2, "X"], ["P", 7, "X"], ["R", 11, "Y"]]},
            {"level": "ifmap_spad"},
            {"level": "filter_spad", "temporal": [["S", 11]]},
            {"level": "psum_spad", "temporal": [["K", 16]]},
        ],
        # PE set R 5 x e 27 folded onto the array: the 27 ofmap rows as 2 (Y) x 14 (X), 28 >= 27
        # (a remainder: 135 of 140 PEs work); per group K 128 = 2 (DRAM) x 4 (glb: m = 64
        # psums held) x 16 (p); C 48 = 24 (DRAM) x 2 (q); one image per pass (n = 1)
        "conv2": [
            {"level": "DRAM", "temporal": [["N", 4], ["G", 2], ["K", 2], ["C", 24]]},
            {"level": "glb", "temporal": [["K", 4], ["Q", 27]],
             "spatial": [["P", 14, "X"], ["P", 2, "Y"], ["R", 5, "Y"]]},
            {"level": "ifmap_spad"},
            {"level": "filter_spad", "temporal": [["C", 2], ["S", 5]]},
            {"level": "psum_spad", "temporal": [["K", 16]]},
        ],
        # K 384 = 6 (DRAM) x 4 (t) x 16 (p); C 256 = 64 (DRAM) x 4 (q)
        "conv3": [
            {"level": "DRAM", "temporal": [["K", 6], ["C", 64]]},
            {"level": "glb", "temporal": [["N", 4], ["Q", 13]],
             "spatial": [["P", 13, "X"], ["R", 3, "Y"], ["K", 4, "Y"]]},
            {"level": "ifmap_spad"},
            {"level": "filter_spad", "temporal": [["C", 4], ["S", 3]]},
            {"level": "psum_spad", "temporal": [["K", 16]]},
        ],
        # per group: K 192 = 3 (DRAM) x 2 (m/32) x 2 (t) x 16 (p); C 192 = 32 (DRAM) x 2 (r) x 3 (q)
        "conv4": [
            {"level": "DRAM", "temporal": [["G", 2], ["K", 3], ["C", 32]]},
            {"level": "glb", "temporal": [["K", 2], ["N", 4], ["Q", 13]],
             "spatial": [["P", 13, "X"], ["R", 3, "Y"], ["C", 2, "Y"], ["K", 2, "Y"]]},
            {"level": "ifmap_spad"},
            {"level": "filter_spad", "temporal": [["C", 3], ["S", 3]]},
            {"level": "psum_spad", "temporal": [["K", 16]]},
        ],
        # per group: K 128 = 2 (DRAM) x 2 (m/32) x 2 (t) x 16 (p); C as CONV4
        "conv5": [
            {"level": "DRAM", "temporal": [["G", 2], ["K", 2], ["C", 32]]},
            {"level": "glb", "temporal": [["K", 2], ["N", 4], ["Q", 13]],
             "spatial": [["P", 13, "X"], ["R", 3, "Y"], ["C", 2, "Y"], ["K", 2, "Y"]]},
            {"level": "ifmap_spad"},
            {"level": "filter_spad", "temporal": [["C", 3], ["S", 3]]},
            {"level": "psum_spad", "temporal": [["K", 16]]},
        ],
    },
}
#: layers whose published mapping cannot be written as an accelsim mapping (none since remainder
#: tiles and the folded row-stationary PE set, issue 22)
NOT_EXPRESSIBLE: dict = {}


def silicon() -> dict:
    """The published figures (fixture), keyed by accelsim layer name (``conv1``...)."""
    data = json.loads(FIXTURE.read_text())
    return {row["layer"].lower(): row for row in data["layers"]}, data


def layer_traces(seed: int = SEED) -> list:
    """AlexNet CONV1-5 as the chip ran them, with the published densities (LayerTraces)."""
    from accelsim.trace import LayerGeometry, StatisticalLayer, TraceData

    published, data = silicon()
    shapes = data["table_iii"]["layers"]
    batch = int(data["conditions"]["batch"])
    records, in_channels = [], 3
    for shape in shapes:
        name = shape["layer"].lower()
        groups = in_channels // shape["C"]
        geometry = LayerGeometry("conv2d", N=batch, C=in_channels, H=shape["H"], W=shape["H"],
                                 K=shape["M"], R=shape["R"], S=shape["R"],
                                 stride_h=shape["U"], stride_w=shape["U"], groups=groups)
        assert (geometry.P, geometry.Q) == (shape["E"], shape["E"]), name
        density = 1.0 - published[name]["ifmap_zeros_pct"] / 100.0
        records.append(StatisticalLayer(name, geometry, 16, 16, density, 1.0))
        in_channels = shape["M"]
    trace = TraceData(layers=records, provenance={"source": "JSSC 2017 Table III/V"},
                      statistical=True, seed=seed)
    layers = trace.layer_traces()
    for this, nxt in zip(layers, layers[1:]):
        this.output_density = 1.0 - published[nxt.name]["ifmap_zeros_pct"] / 100.0
    return layers


def published_mappings() -> dict:
    from accelsim.map.fixed import parse_mappings

    return parse_mappings(PUBLISHED_MAPPINGS, "benchmarks/vs_silicon/eyeriss_v1.py")


def run(mapping: str = "mapper", hw=None, seed: int = SEED) -> dict:
    """accelsim's per-layer figures in the paper's units (batch of 4), keyed by layer name."""
    from accelsim.hw import load_hw
    from accelsim.sim import simulate

    hw = hw or load_hw(HW_PATH)
    _, data = silicon()
    batch = int(data["conditions"]["batch"])
    layers = layer_traces(seed)
    fixed = published_mappings() if mapping == "published" else None
    result = simulate(layers, hw, batch=batch, mappings=fixed)
    clock_hz = hw.technology.clock_mhz * 1e6
    out = {}
    for row in result.layers.to_dict("records"):
        seconds = row["cycles"] * batch / clock_hz
        onchip_pj = (row["energy_pj"] - row["energy_dram_pj"]) * batch
        out[row["layer"]] = {
            "latency": seconds * 1e3,
            "dram": row["dram_bytes"] * batch / 1e6,
            "glb": row["glb_bits"] * batch / 8 / 1e6,
            "power": onchip_pj * 1e-12 / seconds * 1e3,
            "onchip_energy_uj": onchip_pj * 1e-6,
            "macs": row["macs_dense"] * batch,
            "bottleneck": row["bottleneck"],
            "mapping": row["mapping"],
        }
    if mapping == "published":
        out = {name: v for name, v in out.items() if name not in NOT_EXPRESSIBLE}
    return out


def _silicon_value(row: dict, quantity: str) -> float:
    return {"latency": row["processing_latency_ms"], "dram": row["dram_accesses_mb"],
            "glb": row["glb_accesses_mb"], "power": row["power_mw"]}[quantity]


def compare(sim: dict) -> dict:
    """``{layer: {quantity: (silicon, accelsim, ratio)}}`` plus a ``total`` row over ``sim``'s
    layers (latency, DRAM, GLB summed; power: energy over latency, the silicon's weighted by its
    total latency as the paper's own total is)."""
    published, _ = silicon()
    rows = {}
    for name, figs in sim.items():
        rows[name] = {q: (_silicon_value(published[name], q), figs[q],
                          figs[q] / _silicon_value(published[name], q)) for q in QUANTITIES}
    names = list(sim)
    total = {}
    for q in ("latency", "dram", "glb"):
        s = sum(_silicon_value(published[n], q) for n in names)
        a = sum(sim[n][q] for n in names)
        total[q] = (s, a, a / s)
    s_power = (sum(published[n]["power_mw"] * published[n]["total_latency_ms"] for n in names)
               / sum(published[n]["total_latency_ms"] for n in names))
    a_power = (sum(sim[n]["onchip_energy_uj"] for n in names) * 1e-6
               / (sum(sim[n]["latency"] for n in names) * 1e-3) * 1e3)
    total["power"] = (s_power, a_power, a_power / s_power)
    rows["total"] = total
    return rows


def markdown(rows: dict, title: str) -> str:
    head = "| layer | " + " | ".join(f"{LABELS[q]}: silicon | accelsim | ratio" for q in QUANTITIES)
    lines = [f"**{title}**", "", head + " |",
             "|---|" + "---:|---:|---:|" * len(QUANTITIES)]
    for name, figs in rows.items():
        cells = []
        for q in QUANTITIES:
            s, a, r = figs[q]
            fmt = ".0f" if q == "power" else ".1f"
            cells += [f"{s:{fmt}}", f"{a:{fmt}}", f"{r:.2f}"]
        label = "**total**" if name == "total" else name.upper()
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="write every figure to this JSON file")
    parser.add_argument("--seed", type=int, default=SEED, help="mask seed (default 0)")
    args = parser.parse_args(argv)
    out = {}
    for mapping, title in (("mapper", "accelsim's own mapper, CONV1-CONV5"),
                           ("published", "the chip's mappings (Table III), CONV1-CONV5")):
        sim = run(mapping, seed=args.seed)
        rows = compare(sim)
        out[mapping] = {"accelsim": sim, "rows": {k: {q: list(v) for q, v in r.items()}
                                                   for k, r in rows.items()}}
        print(markdown(rows, title))
        print()
        for name, figs in sim.items():
            print(f"- {name}: {figs['mapping']} (bound by {figs['bottleneck']})")
        print()
    if NOT_EXPRESSIBLE:
        print("Not expressible as accelsim fixed mappings: "
              + "; ".join(f"{k}: {v}" for k, v in NOT_EXPRESSIBLE.items()))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
