"""``accelsim simulate``: replay a trace on a hardware description."""
from __future__ import annotations

import argparse
import json
import sys

from accelsim.cli_types import positive_int
from accelsim.errors import AccelsimError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "simulate", help="simulate a trace on a hardware design",
        description="Replay a sparsity trace on an accelerator description: per-layer cycles, "
                    "utilisation, MACs, energy per component, DRAM traffic and memory footprint.")
    p.add_argument("--trace", required=True, metavar="FILE", help="trace file (accelsim trace)")
    p.add_argument("--hw", required=True, metavar="FILE", help="hardware description (YAML)")
    p.add_argument("--fidelity", choices=("fast", "cycle"), default="fast",
                   help="fast: per-fold counts (default); cycle: step every cycle")
    p.add_argument("--samples", type=positive_int, default=None, metavar="N",
                   help="simulate at most N captured samples per layer (default: all)")
    p.add_argument("--batch", type=positive_int, default=None, metavar="B",
                   help="run B samples together: weights are fetched once per batch when the "
                        "mapping allows (figures stay per inference; default: the design's "
                        "residency.batch, 1)")
    p.add_argument("--threads", type=positive_int, default=None, metavar="N",
                   help="simulate N samples at once in threads: same figures, less wall time, "
                        "a little more CPU time (default: ACCELSIM_SIM_THREADS, else 1)")
    p.add_argument("--mappings", metavar="FILE", default=None,
                   help="YAML of loop-nest mappings fixed per layer (designs with a "
                        "memory_hierarchy; `accelsim map --save-mappings` writes one)")
    p.add_argument("--baseline", choices=("dense",), default=None,
                   help="also simulate the same hardware with every sparsity feature off and "
                        "report per-layer savings")
    p.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    p.add_argument("-o", "--output", metavar="FILE", default=None,
                   help="save the per-layer table (.csv or .parquet; totals in FILE.json); with "
                        "--baseline dense also the twin's table as FILE-stem.dense_twin.csv")
    p.add_argument("--progress", action="store_true", help="show a progress bar on stderr")
    p.set_defaults(handler=cmd_simulate)


def cmd_simulate(args: argparse.Namespace) -> int:
    from accelsim.hw import load_hw
    from accelsim.sim import compare, simulate
    from accelsim.sim.headline import headline_figures
    from accelsim.sim.result import twin_path
    from accelsim.trace import open_trace

    if args.threads is not None:   # refused before any work: more only thrash the machine
        from accelsim.sweep.evaluate import check_local_workers

        check_local_workers(args.threads, "--threads", "threads")
    hw = load_hw(args.hw)
    if args.output and not args.output.lower().endswith((".csv", ".parquet")):
        raise AccelsimError(f"-o {args.output}: expected a .csv or .parquet file name")
    if args.output:   # refused before any work, not after the simulation
        from accelsim.atomic import check_output_path

        outputs = [args.output] + ([twin_path(args.output)] if args.baseline else [])
        for path in outputs:
            check_output_path(path)
            check_output_path(f"{path}.json", "output's sidecar")
    mappings = None
    if args.mappings:
        from accelsim.map.fixed import load_mappings

        mappings = load_mappings(args.mappings)
    with open_trace(args.trace) as trace:
        threads = args.threads
        result = simulate(trace, hw, fidelity=args.fidelity, samples=args.samples,
                          progress=args.progress, batch=args.batch, mappings=mappings,
                          threads=threads)
        baseline = None
        if args.baseline == "dense":
            baseline = simulate(trace, hw.dense_twin(), fidelity=args.fidelity,
                                samples=args.samples, progress=args.progress, batch=args.batch,
                                threads=threads)
        phases = _phases(trace, hw, args, baseline is not None)
    for res, design in ((result, hw), (baseline, hw.dense_twin())):
        if res is not None:
            res.meta["trace_path"] = str(args.trace)
            res.meta["hw_path"] = str(args.hw)
            res.meta["dram"] = dram_price(design)
    if baseline is not None:
        # One definition, one name, one unit (fractions; accelsim.sim.headline), per layer here
        # and for the network below: the terminal, the -o table + FILE.json and --json agree.
        savings = compare(result, baseline)
        for key in ("speedup", "energy_saving", "dram_saving"):
            result.layers[key] = savings[key].to_numpy()
        result.totals["baseline"] = {k: baseline.totals[k] for k in
                                     ("cycles", "energy_pj", "dram_bytes", "utilization")}
    result.totals.update(headline_figures(result, baseline))
    if phases:
        result.totals["phases"] = phases
    twin = None
    if args.output:
        result.save(args.output)
        if baseline is not None:  # next to it, so `plot savings --results FILE` finds it
            twin = baseline.save(twin_path(args.output))
    if args.json:
        data = result.to_dict()
        if baseline is not None:
            data["baseline"] = baseline.to_dict()
        json.dump(data, sys.stdout, indent=2, default=_plain)
        sys.stdout.write("\n")
    else:
        print_report(result, args.baseline is not None)
        if args.output:
            print(f"saved {args.output} (+ {args.output}.json)"
                  + (f"; dense twin {twin} (+ {twin}.json)" if twin is not None else ""))
    return 0


def _phases(trace, hw, args: argparse.Namespace, with_baseline: bool) -> dict | None:
    """Prefill (per prompt) and per-decode-token figures of a decoder trace, as
    ``accelsim.sim.decode`` gives them to the API (each step simulated as its own pass); None
    for a trace without phases."""
    from accelsim.sim.decode import has_phases, phase_summary, simulate_phases

    layers = list(trace)
    if not has_phases(layers):
        return None
    options = {"fidelity": args.fidelity, "samples": args.samples, "batch": args.batch,
               "threads": args.threads}
    rows = simulate_phases(layers, hw, **options)
    base = simulate_phases(layers, hw.dense_twin(), **options) if with_baseline else None
    return phase_summary(rows, base)


def dram_price(hw) -> dict:
    """What a DRAM bit costs on ``hw`` and where that figure comes from (printed with the totals:
    it sets the DRAM share of the energy)."""
    from accelsim.hw.energy import energy_model

    overridden = "dram_pj_per_bit" in hw.technology.energy_overrides
    source = ("technology.energy_overrides.dram_pj_per_bit" if overridden
              else f"dram.device {hw.dram.device} x {hw.dram.device_channels} channel(s), "
                   f"sequential {hw.dram.burst_bytes}-byte reads" if hw.dram.device
              else f"energy table {hw.technology.energy_table}")
    return {"pj_per_bit": float(energy_model(hw).dram_pj_per_bit), "source": source,
            "bandwidth_gb_per_s": None if hw.dram.ideal else hw.dram.bandwidth_gb_per_s}


def dram_line(totals: dict, dram: dict) -> str:
    """``DRAM: 30.5 pJ/bit (energy table horowitz_45nm), 1.6 GB/s; 30.503 uJ = 95.1% of the
    energy``."""
    bandwidth = (f"{dram['bandwidth_gb_per_s']:g} GB/s" if dram.get("bandwidth_gb_per_s")
                 else "ideal bandwidth")
    energy = totals.get("energy_dram_pj", 0.0)
    share = energy / totals["energy_pj"] if totals.get("energy_pj") else 0.0
    moved = totals.get("dram_stream_bytes", 0.0)
    if moved and not dram["source"].startswith("technology."):
        # a mapped design's access streams through dram.device: the price they paid
        stream = sum(totals.get(f"energy_dram_{a}_pj", 0.0) for a in
                     ("activate", "precharge", "read", "write", "refresh", "background", "io"))
        return (f"DRAM: {stream / (8.0 * moved):.4g} pJ/bit as accessed "
                f"({dram['source'].split(', sequential')[0]}: the layers' access streams, row "
                f"hits {100 * totals.get('dram_row_hit_rate', 0.0):.1f}%), {bandwidth}; "
                f"{energy / 1e6:.3f} uJ = {100 * share:.1f}% of the energy")
    hint = ("" if dram["source"].startswith("technology.") else
            "; override: technology.energy_overrides.dram_pj_per_bit")
    return (f"DRAM: {dram['pj_per_bit']:g} pJ/bit ({dram['source']}{hint}), {bandwidth}; "
            f"{energy / 1e6:.3f} uJ = {100 * share:.1f}% of the energy")


def memory_line(result) -> str:
    """The runtime-memory line. Its parts add up: a layer's footprint is its on-chip part plus
    what spills off chip, given for the layer with the largest footprint; with a recorded graph
    the network's peak of live tensors (lifetimes across layers) is a separate figure."""
    t = result.totals
    rows = result.rows
    spilled = t.get("spilled_layers") or []
    spill = (f"{', '.join(spilled)} (largest spill {t.get('peak_offchip_bytes', 0.0) / 1024:,.1f} "
             "KiB)" if spilled else "none")
    if not rows:
        return f"peak runtime memory: 0.0 KiB; layers spilling to DRAM: {spill}"
    big = max(rows, key=lambda r: r["live_bytes"])
    layer = (f"{big['live_bytes'] / 1024:,.1f} KiB in layer {big['layer']} = on chip "
             f"{big['onchip_peak_bytes'] / 1024:,.1f} + off chip "
             f"{big['offchip_peak_bytes'] / 1024:,.1f} KiB")
    if "peak_layer_live_bytes" in t:   # tensor lifetimes from the trace's graph
        weights = ("all resident weights" if result.meta.get("weights_resident")
                   else "the running layer's weights")
        return (f"peak runtime memory: {t['peak_live_bytes'] / 1024:,.1f} KiB of live tensors "
                f"at op {t.get('peak_live_step', '-')} (tensor lifetimes from the trace's graph, "
                f"with {weights}); largest layer footprint: {layer}; layers spilling to DRAM: "
                f"{spill}")
    return f"peak runtime memory: {layer}; layers spilling to DRAM: {spill}"


def _plain(value):
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def print_report(result, with_baseline: bool = False, file=None) -> None:
    """Per-layer table and totals, for a terminal."""
    from accelsim.sim.headline import headline_text, percent, times

    file = file or sys.stdout
    meta = result.meta
    print(f"hardware {meta['hw_name']} ({meta['hw_hash'][:12]})  trace "
          f"{(meta.get('trace_hash') or '-')[:12]}  fidelity {meta['fidelity']}", file=file)
    headers = ["layer", "cycles", "stall", "util%", "imbal", "MACs issued", "/dense",
               "energy nJ", "DRAM KiB", "spill"]
    if with_baseline:
        headers += ["speedup", "E saving"]
    rows = []
    table = result.rows
    for r in table:
        row = [str(r["layer"]), f"{r['cycles']:,.0f}", f"{r['stall_cycles']:,.0f}",
               f"{100 * r['utilization']:.1f}", f"{r['load_imbalance']:.2f}",
               f"{r['macs_issued']:,.0f}", f"{r['macs_issued'] / r['macs_dense']:.2f}"
               if r["macs_dense"] else "-",
               f"{r['energy_pj'] / 1e3:,.1f}", f"{r['dram_bytes'] / 1024:,.1f}",
               "yes" if r["spill"] else ""]
        if with_baseline:
            row += [times(r["speedup"]), percent(r["energy_saving"])]
        rows.append(row)
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(headers)]
    print("  ".join(h.ljust(w) if i == 0 else h.rjust(w)
                    for i, (h, w) in enumerate(zip(headers, widths))), file=file)
    for row in rows:
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                        for i, (c, w) in enumerate(zip(row, widths))), file=file)
    t = result.totals
    print(file=file)
    batch = int(meta.get("batch") or 1)
    n = int(max(r["samples"] for r in table)) if table else 0
    resident = "weights resident on chip" if meta.get("weights_resident") else "weights streamed"
    print(f"per inference (mean of {n} samples, batch {batch}; {resident}; per batch: x{batch})",
          file=file)
    for note in meta.get("residency_notes") or ():
        print(f"residency: {note}", file=file)
    print(f"total: {t['cycles']:,.0f} cycles ({t.get('latency_s', 0) * 1e3:.3f} ms), "
          f"{t['energy_uj']:.3f} uJ, utilisation {100 * t['utilization']:.1f}%, "
          f"load imbalance {t['load_imbalance']:.2f}, DRAM {t['dram_bytes'] / 1024:,.1f} KiB",
          file=file)
    if "dram_compulsory_bytes" in t:
        once = t.get("weight_load_bytes") or 0.0
        print(f"DRAM KiB: compulsory {t['dram_compulsory_bytes'] / 1024:,.1f} (network input/output, "
              f"streamed weights), capacity {t['dram_capacity_bytes'] / 1024:,.1f}"
              + (f"; resident weights loaded once: {once / 1024:,.1f}" if once else ""), file=file)
    parts = ", ".join(f"{c} {t[f'energy_{c}_pj'] / 1e6:.3f}" for c in
                      ("mac", "spad", "glb", "noc", "dram", "leakage", "clock"))
    print(f"energy uJ: {parts}", file=file)
    if meta.get("dram"):
        print(dram_line(t, meta["dram"]), file=file)
    print(memory_line(result), file=file)
    if with_baseline:
        print(f"vs dense twin: {headline_text(t)}", file=file)
    else:
        print(f"network: {headline_text(t)}", file=file)
    if t.get("phases"):
        print_phases(t["phases"], file=file)


def print_phases(phases: dict, file=None) -> None:
    """The prefill and per-decode-token lines of a decoder trace (``accelsim.sim.decode``)."""
    from accelsim.sim.headline import headline_text

    file = file or sys.stdout
    titles = {"prefill": "prefill, per prompt", "decode_per_token": "decode, per token"}
    for name, f in phases.items():
        steps = f" (mean of {f['steps']} steps)" if name == "decode_per_token" else ""
        line = (f"{titles.get(name, name)}{steps}: {f['cycles']:,.0f} cycles "
                f"({f['latency_s'] * 1e3:.3f} ms), {f['energy_uj']:.3f} uJ, DRAM "
                f"{f['dram_bytes'] / 1024:,.1f} KiB")
        if "speedup" in f:
            print(f"{line}\n  vs dense twin: {headline_text(f)}", file=file)
        else:
            print(f"{line}; {headline_text(f)}", file=file)
