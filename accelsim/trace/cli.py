"""``accelsim trace ...``: capture, build statistical traces, inspect.

Subcommands: ``capture``, ``from-topology``, ``from-model``, ``from-trace``, ``info``.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from accelsim.cli_types import density, positive_int
from accelsim.cli_types import shape as parse_shape
from accelsim.errors import AccelsimError, DataError
from accelsim.zoo.gate import user_model_arg

DEFAULT_BATCH = 16


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``trace`` verb and its subcommands."""
    parser = subparsers.add_parser("trace", help="capture, build and inspect sparsity traces",
                                   description="Capture, build and inspect sparsity traces.")
    sub = parser.add_subparsers(dest="trace_command", metavar="SUBCOMMAND")
    parser.set_defaults(handler=lambda args: (parser.print_help(), 2)[1])

    p = sub.add_parser("capture", help="capture real masks from a model run on data")
    p.add_argument("--model", type=user_model_arg, help="zoo name, package.module:attribute or torchvision:NAME "
                                   "(default: the model named in the checkpoint)")
    p.add_argument("--checkpoint", help="accelsim checkpoint or plain state_dict to load")
    p.add_argument("--data", help="dataset spec: digits, mnist:PATH, cifar10:PATH, cifar100:PATH, "
                                  "imagenet:PATH[,crop=N], synthetic:..., or random:D1,D2,... (--samples seeded normal "
                                  "inputs of that shape, any rank); default: the checkpoint's "
                                  "dataset, else random inputs of the zoo model's shape")
    p.add_argument("--samples", type=positive_int, required=True, help="samples to trace")
    p.add_argument("--batch-size", type=positive_int, default=DEFAULT_BATCH)
    p.add_argument("--act-bits", type=positive_int, default=8)
    p.add_argument("--weight-bits", type=positive_int, default=8)
    p.add_argument("--quantize-acts", action="store_true",
                   help="activations that round to zero at --act-bits count as zero")
    p.add_argument("--quantize-weights", action="store_true",
                   help="weights that round to zero at --weight-bits count as zero")
    p.add_argument("--threshold", type=float, default=0.0,
                   help="activations with |x| < T count as zero (default 0)")
    p.add_argument("--kinds", default="conv2d,grouped_conv2d,depthwise_conv2d,linear,matmul",
                   help="comma-separated layer kinds to trace")
    p.add_argument("--seed", type=int, default=0, help="seed of random input data")
    p.add_argument("--no-compress", action="store_true", help="store members without deflate")
    p.add_argument("--device", default="cpu",
                   help="torch device to run the model on: cpu (default), cuda, cuda:N; masks "
                        "are packed on the device and only the packed bits come back")
    p.add_argument("-o", "--output", required=True, help="trace file to write (.trace)")
    llm = p.add_argument_group("decoder LLMs (--model llama_tiny|gpt2_tiny|FOLDER; accelsim[llm])")
    llm.add_argument("--prompt-file", help="text file, one prompt per non-empty line (--samples "
                                           "of them, cut to the same length)")
    llm.add_argument("--prompt-ids", help="file of token ids, one prompt per line")
    llm.add_argument("--prompt-tokens", type=positive_int,
                     help="tokens per prompt (default: the shortest prompt's)")
    llm.add_argument("--decode-tokens", type=int, default=None,
                     help="greedy decode steps after the prefill, each its own trace phase")
    llm.add_argument("--teal", type=float, metavar="S",
                     help="TEAL thresholds calibrated on the prompt text to sparsity S first")
    p.set_defaults(handler=cmd_capture)

    p = sub.add_parser("from-topology", help="statistical trace from a SCALE-Sim topology CSV")
    p.add_argument("csv", help="SCALE-Sim topology CSV")
    _statistical_args(p)
    p.set_defaults(handler=cmd_from_topology)

    p = sub.add_parser("from-model", help="statistical trace from a model's layer geometry")
    p.add_argument("model", type=user_model_arg, help="zoo name, package.module:attribute or torchvision:NAME")
    p.add_argument("--input", type=parse_shape, help="one sample's shape, e.g. 3,224,224 "
                                                "(default: the zoo model's)")
    p.add_argument("--input-density", type=density,
                   help="activation density of the first layer (the network input)")
    p.add_argument("--kinds", default="conv2d,grouped_conv2d,depthwise_conv2d,linear")
    _statistical_args(p)
    p.set_defaults(handler=cmd_from_model)

    p = sub.add_parser("from-trace", help="statistical trace with a captured trace's densities")
    p.add_argument("trace", help="captured trace file")
    p.add_argument("--density-model", choices=("per_channel", "uniform"), default="per_channel")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--samples", type=positive_int, help="samples to draw (default: as captured)")
    p.add_argument("-o", "--output", required=True)
    p.set_defaults(handler=cmd_from_trace)

    p = sub.add_parser("info", help="per-layer table: geometry, MACs, densities, sizes")
    p.add_argument("trace", help="trace file")
    p.add_argument("--samples", type=positive_int, help="use only the first N samples")
    p.add_argument("--run-bits", type=positive_int, default=4,
                   help="run-field width of the run-length format (default 4)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(handler=cmd_info)


def _statistical_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--act-density", type=density, required=True)
    p.add_argument("--weight-density", type=density, required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--samples", type=positive_int, default=1, help="samples per layer (default 1)")
    p.add_argument("--act-bits", type=positive_int, default=8)
    p.add_argument("--weight-bits", type=positive_int, default=8)
    p.add_argument("-o", "--output", required=True)


# -- capture ----------------------------------------------------------------------------

def _random_batches(shape: tuple[int, ...], samples: int, batch_size: int, seed: int):
    import torch

    gen = torch.Generator().manual_seed(seed)
    done = 0
    while done < samples:
        n = min(batch_size, samples - done)
        yield torch.randn((n, *shape), generator=gen)
        done += n


def _data_batches(spec: str | None, model_spec: str, samples: int, batch_size: int, seed: int):
    """Batches for capture, and the dataset description for the provenance."""
    if spec is None or spec.startswith("random:"):
        if spec is None:
            from accelsim.zoo import model_input_shape

            if ":" in model_spec:
                raise DataError("--data is required for a model given as module:attribute "
                                "(e.g. --data random:3,32,32)")
            shape = model_input_shape(model_spec)
            spec = "random:" + ",".join(map(str, shape))
        else:
            try:
                shape = parse_shape(spec.partition(":")[2])
            except argparse.ArgumentTypeError as exc:
                raise DataError(f"--data {spec}: {exc}") from None
        return _random_batches(shape, samples, batch_size, seed), f"{spec} (seed {seed})"
    try:
        from accelsim.datasets import load_dataset
    except ImportError:
        raise DataError(f"--data {spec}: dataset loading (accelsim.datasets) is not available "
                        "in this installation; use --data random:C,H,W") from None
    import torch.utils.data

    dataset = load_dataset(spec, train=False)
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False), spec


def _accuracy(metadata: dict):
    for source in (metadata, metadata.get("metrics") if isinstance(metadata.get("metrics"), dict) else {}):
        for key in ("test_accuracy", "accuracy", "val_accuracy"):
            if isinstance(source.get(key), (int, float)):
                return float(source[key])
    return None


def _plain_kwargs(raw, source: str) -> dict:
    """Keyword arguments from a file: a mapping of names to plain scalars, nothing else."""
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not all(
            isinstance(k, str) and isinstance(v, (bool, int, float, str)) for k, v in raw.items()):
        raise AccelsimError(f"{source}: model_kwargs: expected a mapping of names to plain numbers, "
                            "booleans or strings")
    return dict(raw)


def cmd_capture(args: argparse.Namespace) -> int:
    from accelsim.trace.llm import cli_capture, is_decoder_request

    if is_decoder_request(args):  # prompts, prefill and decode phases (accelsim.trace.llm)
        if args.device != "cpu":
            raise AccelsimError(f"--device {args.device}: decoder LLM capture runs on the CPU only; "
                                "drop --device")
        return cli_capture(args)
    from accelsim.device import resolve_device

    device = resolve_device(args.device)  # one line if this build or machine cannot use it
    from accelsim.trace.capture import CaptureOptions, capture_trace
    from accelsim.trace.writer import write_trace
    from accelsim.zoo import build_model, list_models
    from accelsim.zoo.from_data import check_model_from_data

    provenance: dict = {}
    state_dict, metadata = None, {}
    if args.checkpoint:
        from accelsim.train.checkpoint import file_sha256, load_checkpoint

        state_dict, _masks, metadata = load_checkpoint(args.checkpoint)
        provenance.update(checkpoint=str(args.checkpoint),
                          checkpoint_sha256=file_sha256(args.checkpoint),
                          accuracy=_accuracy(metadata))
    source = str(args.checkpoint) if args.checkpoint else "checkpoint"
    raw_kwargs = metadata.get("model_kwargs") if "model_kwargs" in metadata else {}
    if args.model:  # the user's own choice: may name code; the file's kwargs stay plain data
        model_spec = args.model
        kwargs = _plain_kwargs(raw_kwargs, source)
        if model_spec in list_models():
            model_spec, kwargs = check_model_from_data(model_spec, kwargs, f"{source} (with --model)")
    elif metadata.get("model") is None:
        raise AccelsimError("--model is required (the checkpoint does not name its model)")
    else:  # named by the file: a zoo model with typed plain arguments, never code
        model_spec, kwargs = check_model_from_data(metadata.get("model"), raw_kwargs, source)
    model = build_model(model_spec, **kwargs)
    if state_dict is not None:
        try:
            model.load_state_dict(state_dict, strict=True)
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[:3]
            raise AccelsimError(f"{args.checkpoint}: does not fit model {model_spec!r}: "
                                f"{' '.join(first)}") from None
    model = model.to(device)  # capture_trace moves each batch to the model's device
    options = CaptureOptions(samples=args.samples, act_bits=args.act_bits,
                             weight_bits=args.weight_bits, quantize_acts=args.quantize_acts,
                             quantize_weights=args.quantize_weights, threshold=args.threshold,
                             kinds=args.kinds)
    data_spec = args.data or (metadata.get("dataset") if isinstance(metadata.get("dataset"), str)
                              else None)  # default: the data the checkpoint was trained on
    batches, dataset = _data_batches(data_spec, model_spec, args.samples, args.batch_size,
                                     args.seed)
    provenance.update(model=model_spec, dataset=dataset, model_kwargs=kwargs, device=str(device))
    try:
        data = capture_trace(model, batches, options, provenance=provenance, progress=True)
    except (RuntimeError, ValueError, TypeError, IndexError) as exc:
        if isinstance(exc, AccelsimError):
            raise
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise AccelsimError(f"model {model_spec!r} failed on the data {dataset!r}: {message} "
                            "(does --data match the model's input shape? see `accelsim zoo`)") from None
    path = write_trace(args.output, data, compress=not args.no_compress)
    print(f"wrote {path}: {len(data.layers)} layers, {data.num_samples} samples")
    return 0


# -- statistical ------------------------------------------------------------------------

def cmd_from_topology(args: argparse.Namespace) -> int:
    from accelsim.trace.statistical import statistical_from_topology

    data = statistical_from_topology(args.csv, args.act_density, args.weight_density,
                                     seed=args.seed, act_bits=args.act_bits,
                                     weight_bits=args.weight_bits, samples=args.samples,
                                     output=args.output)
    for note in data.provenance.get("notes", []):
        print(f"note: {note}", file=sys.stderr)
    print(f"wrote {args.output}: {len(data.layers)} layers (statistical, seed {args.seed})")
    return 0


def cmd_from_model(args: argparse.Namespace) -> int:
    from accelsim.trace.statistical import statistical_from_model

    data = statistical_from_model(args.model, args.input, args.act_density, args.weight_density,
                                  seed=args.seed, act_bits=args.act_bits,
                                  weight_bits=args.weight_bits, samples=args.samples,
                                  kinds=args.kinds, input_density=args.input_density,
                                  output=args.output)
    print(f"wrote {args.output}: {len(data.layers)} layers (statistical, seed {args.seed})")
    return 0


def cmd_from_trace(args: argparse.Namespace) -> int:
    from accelsim.trace.reader import open_trace
    from accelsim.trace.statistical import statistical_from_trace

    trace = open_trace(args.trace)
    if trace.is_statistical:
        raise AccelsimError(f"{args.trace}: is already a statistical trace")
    data = statistical_from_trace(trace, args.density_model, seed=args.seed,
                                  samples=args.samples, output=args.output)
    print(f"wrote {args.output}: {len(data.layers)} layers ({args.density_model}, "
          f"seed {args.seed})")
    return 0


# -- info -------------------------------------------------------------------------------

def _fmt_bytes(value: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024 or unit == "GiB":
            return f"{value:.0f}{unit}" if unit == "B" else f"{value:.1f}{unit}"
        value /= 1024
    return f"{value:.1f}GiB"


def _geometry_text(g: dict) -> str:
    text = f"{g['C']}x{g['H']}x{g['W']}->{g['K']}x{g['P']}x{g['Q']}"
    if g["kind"] != "linear":
        text += f" {g['R']}x{g['S']}/{g['stride_h']}"
        if g["pad_h"] or g["pad_w"]:
            text += f" p{g['pad_h']}"
        if g["dil_h"] > 1 or g["dil_w"] > 1:
            text += f" d{g['dil_h']}"
        if g["groups"] > 1:
            text += f" g{g['groups']}"
    return text


def info_data(path: str, samples: int | None = None, run_bits: int = 4) -> dict:
    """Everything ``accelsim trace info`` prints, as a JSON-able dict."""
    from tqdm import tqdm

    from accelsim.trace.analysis import (between_layer_ops, network_totals, summarize_layer,
                                         untraced_work)
    from accelsim.trace.reader import open_trace

    trace = open_trace(path)
    rows = [summarize_layer(layer, samples, run_bits)
            for layer in tqdm(trace, total=len(trace), desc="info", unit="layer",
                              leave=False, disable=not sys.stderr.isatty())]
    return {
        "trace": str(trace.path),
        "content_hash": trace.content_hash,
        "schema_version": trace.schema_version,
        "statistical": trace.is_statistical,
        "num_samples": trace.num_samples,
        "samples_analysed": rows[0].samples if rows else 0,
        "run_bits": run_bits,
        "provenance": trace.provenance,
        "layers": [r.to_dict() for r in rows],
        "totals": network_totals(rows),
        "untraced": untraced_work(getattr(trace, "untraced", []), trace.num_samples),
        "between_layer_ops": between_layer_ops(
            trace.graph, trace.metadata["layers"][0]["act_bits"]),
    }


def _print_table(data: dict) -> None:
    prov = data["provenance"]
    kind = "statistical" if data["statistical"] else "captured"
    print(f"{data['trace']}  ({kind}, schema {data['schema_version']}, "
          f"hash {data['content_hash'][:12]})")
    print(f"model {prov.get('model')}  dataset {prov.get('dataset')}  samples "
          f"{data['num_samples']} (analysed {data['samples_analysed']})  "
          f"accelsim {prov.get('accelsim_version')}")
    header = (f"{'#':>3} {'name':<28} {'kind':<10} {'geometry':<34} {'MACs':>10} "
              f"{'act d':>6} {'wt d':>6} {'both':>6} {'act dense':>10} {'bitmap':>10} "
              f"{'rle':>10} {'wt dense':>10} {'bitmap':>10} {'rle':>10}")
    print(header)
    print("-" * len(header))
    short = {"conv2d": "conv", "depthwise_conv2d": "dwconv", "grouped_conv2d": "gconv",
             "linear": "linear", "matmul": "matmul"}
    for r in data["layers"]:
        a, w = r["act_bytes"], r["weight_bytes"]
        print(f"{r['index']:>3} {r['name'][:28]:<28} {short[r['kind']]:<10} "
              f"{_geometry_text(r['geometry'])[:34]:<34} {r['dense_macs_per_sample']:>10.3g} "
              f"{r['act_density']:>6.3f} {r['weight_density']:>6.3f} "
              f"{r['frac_macs_both_nonzero']:>6.3f} {_fmt_bytes(a['dense']):>10} "
              f"{_fmt_bytes(a['bitmap']):>10} {_fmt_bytes(a['rle']):>10} "
              f"{_fmt_bytes(w['dense']):>10} {_fmt_bytes(w['bitmap']):>10} "
              f"{_fmt_bytes(w['rle']):>10}")
    t = data["totals"]
    a, w = t["act_bytes"], t["weight_bytes"]
    print("-" * len(header))
    print(f"{'':>3} {'total (' + str(t['layers']) + ' layers)':<28} {'':<10} {'':<34} "
          f"{t['dense_macs_per_sample']:>10.3g} {t['frac_macs_act_nonzero']:>6.3f} "
          f"{t['frac_macs_weight_nonzero']:>6.3f} {t['frac_macs_both_nonzero']:>6.3f} "
          f"{_fmt_bytes(a['dense']):>10} {_fmt_bytes(a['bitmap']):>10} {_fmt_bytes(a['rle']):>10} "
          f"{_fmt_bytes(w['dense']):>10} {_fmt_bytes(w['bitmap']):>10} {_fmt_bytes(w['rle']):>10}")
    print("MACs: dense per sample; act d / wt d: densities (totals row: MAC-weighted fractions "
          "of MACs with a non-zero activation / weight); both: fraction of MACs with both "
          f"operands non-zero; activation bytes per sample; rle run field {data['run_bits']} bits")
    _print_untraced(data.get("untraced") or {"entries": [], "macs_per_sample": 0})
    _print_between_layer_ops(data.get("between_layer_ops"))


def _print_between_layer_ops(ops: dict | None) -> None:
    """The ops between traced layers per kind, or that the trace does not record them."""
    if ops is None:
        print("between-layer ops: unknown (this trace does not record them: it was captured "
              "before accelsim recorded them, or is statistical; re-capture to know them)")
        return
    print(f"between-layer ops: {ops['ops']} ({ops['tensors']} tensors); outputs per sample "
          f"{_fmt_bytes(ops['dense_bytes'])} dense, {_fmt_bytes(ops['bitmap_bytes'])} bitmap:")
    for row in ops["kinds"]:
        density = "-" if row["density"] is None else f"{row['density']:.3f}"
        print(f"    {row['kind']:<18} {row['count']:>5} ops {row['elements']:>12,} elements "
              f"density {density:>6} {_fmt_bytes(row['dense_bytes']):>10} dense "
              f"{_fmt_bytes(row['bitmap_bytes']):>10} bitmap")


def _print_untraced(untraced: dict) -> None:
    """The compute capture saw but did not trace (never silently dropped)."""
    if not untraced["entries"]:
        return
    print(f"untraced work: {untraced['macs_per_sample']:.4g} MACs per sample in ops the trace "
          "does not hold (not simulated):")
    for e in untraced["entries"]:
        print(f"    {e['name'][:40]:<40} {e['op']:<28} {e['calls']:>6} calls "
              f"{e['macs_per_sample']:>10.4g} MACs/sample")


def cmd_info(args: argparse.Namespace) -> int:
    data = info_data(args.trace, args.samples, args.run_bits)
    if args.json:
        json.dump(data, sys.stdout, indent=1, default=_json_default)
        print()
    else:
        _print_table(data)
    return 0


def _json_default(value):
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (np.ndarray,)):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON-able: {type(value).__name__}")
