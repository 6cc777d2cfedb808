"""Published zero-skipping results, reproduced in shape by accelsim's shipped hardware files.

Three studies, each a shipped design against a twin that lacks its sparsity feature, on
statistical traces at the densities the papers report (``figures.py``):

- ``cnvlutin``: ``cnvlutin_like.yaml`` (skips zero activations) vs its dense twin, activations
  at 56% density (Cnvlutin's 44% zeros), dense weights; published 1.37x (1.24-1.55x);
- ``dual``: ``sparten_like.yaml`` (skips zero activations and weights) vs its dense twin, and vs
  itself skipping activations only; Han et al.'s pruned weight densities; published SCNN 2.7x
  speed / 2.3x energy, SparTen 4.7x over dense and 1.8x over one-sided;
- ``eyeriss``: ``eyeriss_v1.yaml`` (gates zero activations) vs the same file with gating off:
  no speedup, PE energy (MAC + scratchpads) saved; published 45% of PE power.

For speed, four accelsim figures are given: *as shipped* (cycles with the file's global-buffer
port and DRAM), *port x2* (the same with twice the buffer words per cycle, both designs),
*compute-bound* (``compute_cycles``: the array alone, ideal port and memory, the regime the
papers' accelerators were provisioned for), and the *work bound* (each layer's dense compute
time scaled by its fraction of MACs issued: perfect balance, no fill/drain).

    python benchmarks/published/reproduce.py                       # alexnet + vgg16 (~30 s)
    python benchmarks/published/reproduce.py --networks alexnet --json out.json --markdown out.md

Networks: ``alexnet`` (the topology CSV ``benchmarks/vs_scalesim/topologies/alexnet.csv``, no
PyTorch needed), ``vgg16`` and ``resnet18`` (zoo geometry through ``statistical_from_model``).
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "benchmarks" / "vs_scalesim"))

import figures  # noqa: E402
import vs_report  # noqa: E402

from accelsim.hw import load_hw  # noqa: E402
from accelsim.sim import simulate  # noqa: E402

HW = ROOT / "hw_configs"
TOPOLOGY = ROOT / "benchmarks" / "vs_scalesim" / "topologies"
STUDIES = ("cnvlutin", "dual", "eyeriss")
NETWORKS = ("alexnet", "vgg16")


def traces(network: str, act: dict, weight: dict | float, seed: int = 0) -> list:
    """Statistical LayerTraces of ``network`` at the given densities (one sample)."""
    if network == "alexnet":
        from accelsim.trace import statistical_from_topology

        data = statistical_from_topology(TOPOLOGY / "alexnet.csv", act, weight, seed=seed)
    else:
        from accelsim.trace import statistical_from_model

        if isinstance(weight, dict) and "*" not in weight:
            weight = {**weight, "*": 1.0}
        data = statistical_from_model(network, None, act, weight, seed=seed)
    return data.layer_traces()


def is_fc(layer) -> bool:
    """Fully connected: a linear layer, or a 1x1 filter on a 1x1 input (topology CSV form)."""
    g = layer.geometry
    return g.kind == "linear" or (g.H == g.W == g.R == g.S == 1)


def scopes(layers: list) -> dict[str, list[str]]:
    """Layer-name sets the figures are summed over."""
    conv = [l.name for l in layers if not is_fc(l)]
    return {"conv": conv, "conv (ReLU inputs)": conv[1:], "all": [l.name for l in layers]}


def _sum(result, names: list[str], column: str) -> float:
    frame = result.layers
    return float(frame.loc[frame["layer"].isin(names), column].sum())


def work_bound(sparse, baseline, names: list[str]) -> float:
    """Speedup if each layer's baseline compute time shrank with the MACs it issues.

    ``sum(base compute) / sum(base compute * issued / base issued)`` over the layers: perfect
    balance, no fill/drain, the baseline's array utilisation.
    """
    s = sparse.layers.set_index("layer").loc[names]
    d = baseline.layers.set_index("layer").loc[names]
    shrunk = (d["compute_cycles"] * s["macs_issued"] / d["macs_issued"]).sum()
    return float(d["compute_cycles"].sum() / shrunk)


def speed_figures(sparse, dense, names: list[str]) -> dict:
    """Speedups of ``sparse`` over ``dense`` summed over ``names``."""
    return {
        "speedup": _sum(dense, names, "cycles") / _sum(sparse, names, "cycles"),
        "compute_speedup": _sum(dense, names, "compute_cycles")
        / _sum(sparse, names, "compute_cycles"),
        "work_bound": work_bound(sparse, dense, names),
        "energy_improvement": _sum(dense, names, "energy_pj") / _sum(sparse, names, "energy_pj"),
        "load_imbalance": _sum(sparse, names, "busy_max_sum")
        / max(_sum(sparse, names, "busy_mean_sum"), 1e-12),
    }


def pe_energy(result, names: list[str]) -> float:
    """PE datapath energy: MACs plus per-PE scratchpads (what data gating acts on)."""
    return _sum(result, names, "energy_mac_pj") + _sum(result, names, "energy_spad_pj")


def wide_port(hw):
    """``hw`` with twice the words per cycle of every shared (global-buffer) level's ports
    (the port-bound check)."""
    def doubled(value):
        return None if value is None else 2 * value

    if hw.memory_hierarchy is None:
        gb = hw.global_buffer
        return dataclasses.replace(hw, name=f"{hw.name}-port2x", global_buffer=dataclasses.replace(
            gb, words_per_cycle=doubled(gb.words_per_cycle)))
    levels = tuple(lv if lv.instances == "per_pe" else dataclasses.replace(
        lv, read_words_per_cycle=doubled(lv.read_words_per_cycle),
        write_words_per_cycle=doubled(lv.write_words_per_cycle)) for lv in hw.memory_hierarchy)
    return dataclasses.replace(hw, name=f"{hw.name}-port2x", memory_hierarchy=levels)


def port2x_speedup(layers: list, hw, baseline, names_by_scope: dict) -> dict[str, float]:
    """Per scope: cycles speedup of ``hw`` over ``baseline``, both with a doubled port."""
    sparse, dense = simulate(layers, wide_port(hw)), simulate(layers, wide_port(baseline))
    return {scope: _sum(dense, names, "cycles") / _sum(sparse, names, "cycles")
            for scope, names in names_by_scope.items()}


def study_cnvlutin(network: str, seed: int = 0) -> list[dict]:
    hw = load_hw(HW / "cnvlutin_like.yaml")
    layers = traces(network, figures.activation_density(network), 1.0, seed)
    sparse, dense = simulate(layers, hw), simulate(layers, hw.dense_twin())
    by_scope = scopes(layers)
    wide = port2x_speedup(layers, hw, hw.dense_twin(), by_scope)
    rows = []
    for scope, names in by_scope.items():
        rows.append({"study": "cnvlutin", "network": network, "scope": scope,
                     "compared": "cnvlutin_like vs dense twin",
                     **speed_figures(sparse, dense, names), "speedup_port2x": wide[scope],
                     "published": figures.CNVLUTIN_SPEEDUP.value,
                     "published_key": figures.CNVLUTIN_SPEEDUP.key,
                     "published_metric": "speedup"})
    return rows


def study_dual(network: str, seed: int = 0) -> list[dict]:
    hw = load_hw(HW / "sparten_like.yaml")
    one_sided = dataclasses.replace(
        hw, name=f"{hw.name}-act-only",
        sparsity=dataclasses.replace(hw.sparsity, skip_zero_weights=False))
    layers = traces(network, figures.activation_density(network),
                    figures.pruned_weight_density(network), seed)
    sparse = simulate(layers, hw)
    dense = simulate(layers, hw.dense_twin())
    act_only = simulate(layers, one_sided)
    by_scope = scopes(layers)
    wide_dense = port2x_speedup(layers, hw, hw.dense_twin(), by_scope)
    wide_one = port2x_speedup(layers, hw, one_sided, by_scope)
    rows = []
    for scope, names in by_scope.items():
        base = {"study": "dual", "network": network, "scope": scope}
        vs_dense = speed_figures(sparse, dense, names)
        rows.append({**base, "compared": "sparten_like vs dense twin", **vs_dense,
                     "speedup_port2x": wide_dense[scope],
                     "published": figures.SCNN_SPEEDUP.value,
                     "published_key": f"{figures.SCNN_SPEEDUP.key} (SparTen: "
                                      f"{figures.SPARTEN_SPEEDUP.value}x)",
                     "published_metric": "speedup",
                     "published_energy": figures.SCNN_ENERGY.value})
        rows.append({**base, "compared": "sparten_like vs activation-only skipping",
                     **speed_figures(sparse, act_only, names), "speedup_port2x": wide_one[scope],
                     "published": figures.SPARTEN_VS_ONE_SIDED.value,
                     "published_key": figures.SPARTEN_VS_ONE_SIDED.key,
                     "published_metric": "speedup"})
    return rows


def study_eyeriss(network: str, seed: int = 0) -> list[dict]:
    hw = load_hw(HW / "eyeriss_v1.yaml")
    no_gate = dataclasses.replace(
        hw, name=f"{hw.name}-no-gating",
        sparsity=dataclasses.replace(hw.sparsity, gate_zero_operands=False))
    layers = traces(network, figures.activation_density(network), 1.0, seed)
    gated, ungated, dense = simulate(layers, hw), simulate(layers, no_gate), \
        simulate(layers, hw.dense_twin())
    rows = []
    for scope, names in scopes(layers).items():
        if scope == "all":
            continue  # Eyeriss reports CONV layers
        figs = speed_figures(gated, ungated, names)
        rows.append({"study": "eyeriss", "network": network, "scope": scope,
                     "compared": "eyeriss_v1 vs gating off", **figs,
                     "pe_energy_saving": 1 - pe_energy(gated, names) / pe_energy(ungated, names),
                     "total_energy_saving": 1 - _sum(gated, names, "energy_pj")
                     / _sum(ungated, names, "energy_pj"),
                     "energy_saving_vs_dense_twin": 1 - _sum(gated, names, "energy_pj")
                     / _sum(dense, names, "energy_pj"),
                     "speedup_vs_dense_twin": _sum(dense, names, "cycles")
                     / _sum(gated, names, "cycles"),
                     "published": figures.EYERISS_PE_POWER.value,
                     "published_key": figures.EYERISS_PE_POWER.key,
                     "published_metric": "PE power saving"})
    return rows


RUNNERS = {"cnvlutin": study_cnvlutin, "dual": study_dual, "eyeriss": study_eyeriss}


def speed_table(rows: list[dict]) -> str:
    out = []
    for r in rows:
        if r["study"] == "eyeriss":
            continue
        energy = vs_report.ratio(r["energy_improvement"])
        if "published_energy" in r:
            energy += f" (published {r['published_energy']}x)"
        out.append([r["study"], r["network"], r["scope"], r["compared"],
                    vs_report.ratio(r["speedup"]), vs_report.ratio(r["speedup_port2x"]),
                    vs_report.ratio(r["compute_speedup"]),
                    vs_report.ratio(r["work_bound"]), f"{r['load_imbalance']:.3f}",
                    f"{r['published']}x", energy, r["published_key"]])
    headers = ["study", "network", "layers", "compared", "as shipped", "port x2",
               "compute-bound", "work bound", "imbalance", "published", "energy improvement",
               "source"]
    right = [False] * 4 + [True] * 7 + [False]
    return vs_report.table(headers, out, right)


def gating_table(rows: list[dict]) -> str:
    out = [[r["network"], r["scope"], vs_report.ratio(r["speedup"]),
            f"{100 * r['pe_energy_saving']:.1f}%", f"{100 * r['published']:.0f}%",
            f"{100 * r['total_energy_saving']:.1f}%",
            f"{100 * r['energy_saving_vs_dense_twin']:.1f}%",
            vs_report.ratio(r["speedup_vs_dense_twin"])]
           for r in rows if r["study"] == "eyeriss"]
    headers = ["network", "layers", "speedup vs no gating", "PE energy saved",
               "published PE power saved", "total energy saved", "energy saved vs dense twin",
               "speedup vs dense twin"]
    return vs_report.table(headers, out, [False, False] + [True] * 6)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", default=",".join(STUDIES), help="default: %(default)s")
    parser.add_argument("--networks", default=",".join(NETWORKS),
                        help="alexnet, vgg16 (dual needs published weight densities: alexnet, "
                             "vgg16); default: %(default)s")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args(argv)
    studies = [s.strip() for s in args.studies.split(",") if s.strip()]
    networks = [n.strip() for n in args.networks.split(",") if n.strip()]
    bad = [s for s in studies if s not in RUNNERS] + \
        [n for n in networks if n not in figures.FIRST_LAYER]
    if bad:
        print(f"error: unknown study or network: {', '.join(bad)} (studies: "
              f"{', '.join(STUDIES)}; networks: {', '.join(figures.FIRST_LAYER)})",
              file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    rows: list[dict] = []
    for study in studies:
        for net in networks:
            print(f"[published] {study} {net}", file=sys.stderr, flush=True)
            rows += RUNNERS[study](net, args.seed)
    parts = ["## Speed (and energy) against published figures", "", speed_table(rows), "",
             "## Data gating (Eyeriss-like)", "", gating_table(rows), "", "## Sources", ""]
    for fig in figures.FIGURES:
        parts.append(f"- `{fig.key}` = {fig.value}: {fig.metric}. {fig.source}. "
                     f"Checked: {fig.checked}.")
    parts += [f"- Activation densities: {figures.ACT_SOURCE}.",
              f"- Weight densities (dual): {figures.HAN_SOURCE}.", "",
              f"_{' '.join(sys.argv)} ({time.perf_counter() - t0:.1f} s)_"]
    text = "\n".join(parts) + "\n"
    print(text)
    if args.markdown:
        vs_report.write_atomic(args.markdown, text)
    if args.json:
        vs_report.write_json(args.json, {"command": " ".join(sys.argv), "rows": rows,
                                         "figures": [dataclasses.asdict(f)
                                                     for f in figures.FIGURES]})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
