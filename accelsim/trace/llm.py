"""Capturing decoder LLMs: prefill and decode steps (with a KV cache) as phases of one trace.

``capture_decoder(model, prompts, decode_tokens, options)`` runs every prompt on its own
(batch 1, as a decoder serves one request): one forward over the whole prompt
(*prefill*), then ``decode_tokens`` greedy steps of one token each that reuse the
model's KV cache (*decode*). Every phase is captured by its own
:class:`~accelsim.trace.capture.MaskRecorder` and the layers are concatenated in
execution order, named ``prefill/<layer>`` and ``decode<t>/<layer>``. Each layer's
``stats`` carry ``phase`` (``"prefill"`` or ``"decode"``) and ``step`` (0 for prefill,
``t`` for the t-th generated token, from 1), stored in the trace file as extra per-layer
statistics: older traces, which lack them, read as phase ``"all"``
(:func:`layer_phase`). Decode layers are matrix-vector work (``H = 1`` token); their
attention products ``attn_qk``/``attn_pv`` run over the cache, whose length grows by
one per step (``K = heads * (prompt + t)``).

Models come from ``transformers`` (the optional ``accelsim[llm]`` extra): a zoo name
(:mod:`accelsim.zoo.llama`, random initialisation) or a local checkpoint folder
(``config.json`` plus safetensors weights; never the hub: ``local_files_only``).
Text is tokenised by the folder's tokenizer when it has one, else as UTF-8 bytes.
"""
from __future__ import annotations

import dataclasses
import inspect
import json
import os
import re
import stat
import warnings
from pathlib import Path
import numpy as np
import torch
import torch.nn as nn

from accelsim.errors import AccelsimError, DataError
from accelsim.trace.capture import CaptureOptions, MaskRecorder, base_provenance
from accelsim.trace.phases import MAX_POSITIONS, PHASES, layer_phase  # noqa: F401 (re-exported)
from accelsim.trace.records import TraceData

# -- models and text ------------------------------------------------------------------

def load_decoder(spec: str | os.PathLike, seed: int = 0) -> tuple[nn.Module, object | None]:
    """(model, tokenizer or None) from a zoo name or a local checkpoint folder (no network)."""
    path = Path(spec)
    if path.is_dir():
        return _load_folder(path)
    from accelsim.zoo import get_model
    from accelsim.zoo.llama import DECODERS

    if str(spec) not in DECODERS:
        raise AccelsimError(f"decoder model {str(spec)!r}: expected a zoo decoder "
                            f"({', '.join(DECODERS)}) or a local checkpoint folder")
    return get_model(str(spec), seed=seed), None


def _load_folder(path: Path) -> tuple[nn.Module, object | None]:
    from accelsim.zoo.registry import import_library

    tf = import_library("transformers", "decoder LLMs (accelsim[llm])")
    if not (path / "config.json").is_file():
        raise AccelsimError(f"{path}: expected a checkpoint folder with config.json "
                            "(save one with model.save_pretrained(folder))")
    check_folder_configs(path)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with _quiet_transformers(tf):
        check_against_weights(tf, path)
        try:  # never the folder's own Python: transformers refuses custom code, never prompts
            model, info = tf.AutoModelForCausalLM.from_pretrained(
                str(path), local_files_only=True, trust_remote_code=False, output_loading_info=True)
        except Exception as exc:  # noqa: BLE001 - transformers raises many types; one line
            text = _first_line(exc)
            if "ignore_mismatched_sizes" in text:   # its report (quieted) said which
                text = "a weight has another shape than config.json gives"
            raise AccelsimError(f"{path}: cannot load the checkpoint: {text}") from None
        check_loading_info(path, info)
        tokenizer = None
        if any((path / f).is_file() for f in ("tokenizer.json", "tokenizer_config.json",
                                             "tokenizer.model")):
            try:
                tokenizer = tf.AutoTokenizer.from_pretrained(str(path), local_files_only=True,
                                                             trust_remote_code=False)
            except Exception as exc:  # noqa: BLE001
                raise AccelsimError(f"{path}: cannot load its tokenizer: {_first_line(exc)}") from None
    return model.eval(), tokenizer


#: Largest safetensors header read by :func:`stored_shapes` (names, dtypes and shapes only).
_HEADER_LIMIT = 64 << 20
#: A transformer block's index in a weight name (model.layers.3., transformer.h.3., ...).
_BLOCK_KEY = re.compile(r"(?:^|\.)(?:layers|layer|h|blocks|block)\.(\d+)\.")


def stored_shapes(path: Path) -> dict[str, tuple] | None:
    """Weight name -> shape from the folder's safetensors header(s), reading no tensor data;
    None when there are no safetensors weights or a header is unreadable (transformers then
    reports what is wrong when it loads them)."""
    index = path / "model.safetensors.index.json"
    try:
        if os.path.isfile(path / "model.safetensors"):
            files = [path / "model.safetensors"]
        elif os.path.isfile(index):
            from accelsim.inputs import read_limited

            weight_map = json.loads(read_limited(index, _CONFIG_LIMIT, "weight index"))["weight_map"]
            files = sorted({path / str(name) for name in weight_map.values()})
        else:
            return None
        shapes: dict[str, tuple] = {}
        for file in files:
            fd = os.open(file, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
            with open(fd, "rb") as fh:
                if not stat.S_ISREG(os.fstat(fd).st_mode):
                    return None
                size = int.from_bytes(fh.read(8), "little")
                if not 0 < size <= _HEADER_LIMIT:
                    return None
                header = json.loads(fh.read(size))
            for name, entry in header.items():
                if name != "__metadata__":
                    shapes[name] = tuple(int(d) for d in entry["shape"])
        return shapes
    except Exception:  # noqa: BLE001 - any damage: transformers' own load says what it is
        return None


def check_against_weights(tf, path: Path) -> None:
    """Refuse, before transformers builds the model, a config.json that does not describe the
    stored weights: another number of blocks (a hostile count would make transformers build
    millions of layers) or another shape of a stored weight (it would first allocate the
    model config.json describes, whatever its size). Only the safetensors headers are read;
    the model is laid out on the meta device, which allocates nothing."""
    shapes = stored_shapes(path)
    if not shapes:
        return
    try:
        config = tf.AutoConfig.from_pretrained(str(path), local_files_only=True,
                                               trust_remote_code=False)
    except Exception as exc:  # noqa: BLE001
        raise AccelsimError(f"{path}: cannot load the checkpoint: {_first_line(exc)}") from None
    layers = getattr(config, "num_hidden_layers", None)
    blocks = {int(m.group(1)) for name in shapes for m in [_BLOCK_KEY.search(name)] if m}
    if blocks and isinstance(layers, int) and not isinstance(layers, bool) and layers != len(blocks):
        raise AccelsimError(f"{path / 'config.json'}: num_hidden_layers: {layers:,} blocks, but "
                            f"the checkpoint holds the weights of {len(blocks):,}")
    try:
        with torch.device("meta"):
            model = tf.AutoModelForCausalLM.from_config(config, trust_remote_code=False)
        expected = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    except Exception:  # noqa: BLE001 - transformers' own load reports it
        return
    for name, shape in shapes.items():
        if name in expected and expected[name] != shape:
            raise AccelsimError(f"{path}: the checkpoint does not match its config.json: weight "
                                f"{name[:120]!r} is stored as {list(shape)}, config.json makes "
                                f"it {list(expected[name])}")


class _quiet_transformers:
    """transformers' loading report and progress bars off while a folder loads: what goes
    wrong becomes one error line (the previous verbosity and bar setting come back after)."""

    def __init__(self, tf):
        self.logging = getattr(getattr(tf, "utils", None), "logging", None)

    def __enter__(self):
        if self.logging is not None:
            self.verbosity = self.logging.get_verbosity()
            self.bars = self.logging.is_progress_bar_enabled()
            self.logging.set_verbosity_error()
            self.logging.disable_progress_bar()
        return self

    def __exit__(self, *exc):
        if self.logging is not None:
            self.logging.set_verbosity(self.verbosity)
            if self.bars:
                self.logging.enable_progress_bar()
        return False


def check_loading_info(path: Path, info: dict) -> None:
    """Refuse, in one line, a folder whose weights do not all load as stored: weights its
    config.json needs but the checkpoint lacks (transformers would initialise them at random,
    silently), checkpoint weights the model has no place for, or weights of another shape."""
    for key, what in (("missing_keys", "missing from the checkpoint (they would be initialised "
                                       "at random)"),
                      ("unexpected_keys", "in the checkpoint but not in the model its "
                                          "config.json describes"),
                      ("mismatched_keys", "of another shape than config.json gives"),
                      ("error_msgs", "not loadable")):
        found = sorted(str(k if not isinstance(k, (tuple, list)) else k[0])
                       for k in (info.get(key) or ()))
        if found:
            more = f" and {len(found) - 1:,} more" if len(found) > 1 else ""
            raise AccelsimError(f"{path}: the checkpoint does not match its config.json: weight "
                                f"{found[0][:120]!r}{more} {what}")


#: JSON files of a checkpoint folder that transformers reads as configuration (any of them
#: may carry ``auto_map``, which names Python files of the folder to import).
FOLDER_CONFIGS = ("config.json", "tokenizer_config.json", "generation_config.json",
                  "preprocessor_config.json", "processor_config.json", "special_tokens_map.json")
_CONFIG_LIMIT = 4 << 20
_CODE_KEYS = ("auto_map", "custom_pipelines")


def check_folder_configs(path: Path) -> None:
    """Refuse a checkpoint folder whose configuration names code or holds NaN/inf, in one line.

    transformers with ``trust_remote_code=False`` already refuses custom code; this check
    says why before transformers is asked (and before any of its prompts), and keeps
    non-finite numbers out of the model's configuration.
    """
    from accelsim.inputs import read_limited

    def refuse_constant(name: str):
        raise ValueError(f"{name} is not a number a configuration may hold")

    for name in FOLDER_CONFIGS:
        file = path / name
        if not os.path.lexists(file):
            continue
        raw = read_limited(file, _CONFIG_LIMIT, "checkpoint configuration")
        try:
            data = json.loads(raw.decode("utf-8"), parse_constant=refuse_constant)
        except (ValueError, UnicodeDecodeError) as exc:
            raise AccelsimError(f"{file}: not valid JSON ({_first_line(exc)})") from None
        except RecursionError:
            raise AccelsimError(f"{file}: not a configuration: nested too deeply") from None
        if not isinstance(data, dict):
            raise AccelsimError(f"{file}: expected a JSON object, got {type(data).__name__}")
        for key in _CODE_KEYS:
            if key in data:
                raise AccelsimError(f"{file}: {key}: the folder names its own Python code, which "
                                    "accelsim never runs; use a checkpoint of a model class "
                                    "that transformers ships")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


def encode_text(text: str, tokenizer=None, vocab_size: int | None = None) -> list[int]:
    """Token ids of ``text``: the tokenizer's, else its UTF-8 bytes (needs a vocabulary >= 256)."""
    if tokenizer is not None:
        try:
            return [int(t) for t in tokenizer(text)["input_ids"]]
        except Exception as exc:  # noqa: BLE001 - a tokenizer configured badly fails inside
            where = getattr(tokenizer, "name_or_path", "") or "the checkpoint folder"
            raise AccelsimError(f"{where}: its tokenizer cannot encode the prompt text "
                                f"({type(exc).__name__}: {_first_line(exc)})") from None
    if vocab_size is not None and vocab_size < 256:
        raise AccelsimError(f"byte-level tokens need a vocabulary of at least 256; the model "
                            f"has {vocab_size} (give a checkpoint folder with a tokenizer)")
    return list(text.encode("utf-8"))


def prompts_from_text(path: str | os.PathLike, samples: int, prompt_len: int | None,
                      tokenizer=None, vocab_size: int | None = None) -> torch.Tensor:
    """``samples`` prompts of equal length (N, T) from a text file, one per non-empty line.

    Every prompt is cut to ``prompt_len`` tokens (default: the shortest line's length).
    """
    lines = _read_lines(path, "prompt file")
    encoded = [encode_text(line, tokenizer, vocab_size) for line in lines]
    return _equal_prompts(encoded, samples, prompt_len, str(path))


def prompts_from_ids(path: str | os.PathLike, samples: int, prompt_len: int | None,
                     vocab_size: int | None = None) -> torch.Tensor:
    """Prompts of token ids from a file: one prompt per line, ids separated by spaces/commas."""
    encoded = []
    for number, line in enumerate(_read_lines(path, "token-id file"), 1):
        try:
            ids = [int(tok) for tok in line.replace(",", " ").split()]
        except ValueError:
            raise DataError(f"{path}: line {number}: expected integer token ids separated by "
                            "spaces or commas") from None
        bad = [i for i in ids if i < 0 or (vocab_size is not None and i >= vocab_size)]
        if bad:
            raise DataError(f"{path}: line {number}: token id {bad[0]} is outside the "
                            f"vocabulary [0, {vocab_size})")
        encoded.append(ids)
    return _equal_prompts(encoded, samples, prompt_len, str(path))


#: Largest prompt or token-id file read (a FIFO or /dev/zero is refused before reading).
MAX_PROMPT_BYTES = 16 << 20


def read_prompt_text(path, what: str = "prompt file") -> str:
    """The UTF-8 text of a regular file of at most :data:`MAX_PROMPT_BYTES`; one clean error
    (naming the file) for a FIFO, a device, a folder, a missing or larger file, or bad UTF-8."""
    from accelsim.inputs import read_limited

    data = read_limited(path, MAX_PROMPT_BYTES, what)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: the {what} is not UTF-8 text (byte 0x{data[exc.start]:02x} at "
                        f"offset {exc.start})") from None


def _read_lines(path, what: str) -> list[str]:
    text = read_prompt_text(path, what)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        raise DataError(f"{path}: the {what} has no non-empty line")
    return lines


def _equal_prompts(encoded: list[list[int]], samples: int, prompt_len: int | None,
                   where: str) -> torch.Tensor:
    if len(encoded) < samples:
        raise DataError(f"{where}: {samples} prompts requested but it holds {len(encoded)} "
                        "(one per non-empty line)")
    chosen = encoded[:samples]
    shortest = min(len(p) for p in chosen)
    length = shortest if prompt_len is None else int(prompt_len)
    if length < 1 or shortest < length:
        raise DataError(f"{where}: prompts of {length} tokens requested but the shortest of the "
                        f"first {samples} has {shortest}")
    return torch.tensor([p[:length] for p in chosen], dtype=torch.long)


# -- capture ----------------------------------------------------------------------------

def _cache_keyword(model: nn.Module) -> str:
    """The forward's name for the KV cache (``cache`` in newer transformers)."""
    params = inspect.signature(model.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def _step(model: nn.Module, ids: torch.Tensor, cache, keyword: str):
    kwargs = {"input_ids": ids, "use_cache": True}
    if cache is not None:
        kwargs[keyword] = cache
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        out = model(**kwargs)
    if keyword == "cache":
        new_cache = getattr(out, "cache", None)
    else:
        new_cache = getattr(out, "past_key_values", None)
    return out.logits, new_cache


def capture_decoder(model: nn.Module, prompts: torch.Tensor, decode_tokens: int,
                    options: CaptureOptions, provenance: dict | None = None) -> TraceData:
    """Capture prefill of ``prompts`` (N, T) and ``decode_tokens`` greedy decode steps.

    Each prompt runs alone (batch 1); the trace has N samples. ``options.samples`` is
    ignored (every prompt is traced).
    """
    if prompts.dim() != 2 or prompts.shape[0] < 1 or prompts.shape[1] < 1:
        raise AccelsimError(f"capture_decoder: expected prompts of shape (N, T) with N, T >= 1, "
                            f"got {tuple(prompts.shape)}")
    if not isinstance(decode_tokens, int) or decode_tokens < 0:
        raise AccelsimError(f"decode tokens: expected an integer >= 0, got {decode_tokens!r}")
    n, length = (int(s) for s in prompts.shape)
    limit = getattr(getattr(model, "config", None), "max_position_embeddings", None) or \
        getattr(getattr(model, "config", None), "n_positions", None)
    if limit is not None and length + decode_tokens > int(limit):
        raise AccelsimError(f"prompt ({length}) + decode tokens ({decode_tokens}) exceed the "
                            f"model's {limit} positions")
    if length + decode_tokens > MAX_POSITIONS:  # a configuration may claim any context length
        raise AccelsimError(f"prompt ({length}) + decode tokens ({decode_tokens}) exceed the "
                            f"{MAX_POSITIONS:,} positions a capture traces (each step records "
                            "every layer's masks)")
    vocab = getattr(getattr(model, "config", None), "vocab_size", None)
    if vocab is not None and (int(prompts.min()) < 0 or int(prompts.max()) >= int(vocab)):
        raise AccelsimError(f"prompts hold token ids outside the model's vocabulary [0, {vocab})")
    keyword = _cache_keyword(model)
    options = dataclasses.replace(options, samples=n)
    was_training = model.training
    model.eval()
    phases = ["prefill"] + [f"decode{t}" for t in range(1, decode_tokens + 1)]
    generated = np.zeros((n, decode_tokens), dtype=np.int64)
    ids = [prompts[i:i + 1] for i in range(n)]
    caches: list = [None] * n
    layers, untraced = [], []
    try:
        # phase-major: one recorder per phase sees every prompt's step (caches kept per prompt)
        with torch.no_grad(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="capture: the ops between layers")
            for step, name in enumerate(phases):
                with MaskRecorder(model, options) as rec:
                    for i in range(n):
                        rec.start_batch(1, single=True)
                        logits, caches[i] = _step(model, ids[i], caches[i], keyword)
                        if not bool(torch.isfinite(logits).all()):
                            raise AccelsimError(_non_finite(model, name, i))
                        ids[i] = logits[:, -1].argmax(-1, keepdim=True)
                        if step < decode_tokens:
                            generated[i, step] = int(ids[i])
                    phase_layers = rec.finish()
                    phase_untraced = rec.untraced
                phase = "prefill" if step == 0 else "decode"
                for layer in phase_layers:
                    layer.name = f"{name}/{layer.name}"
                    layer.stats["phase"] = phase
                    layer.stats["step"] = step
                    layers.append(layer)
                untraced += [dict(e, name=f"{name}/{e['name']}") for e in phase_untraced]
    finally:
        model.train(was_training)
    prov = base_provenance(model, options, n)
    prov.update({"model": type(model).__name__, "dataset": "prompts"})
    prov.update(provenance or {})
    prov["num_samples"] = n
    prov["decoder"] = {"prompt_tokens": length, "decode_tokens": int(decode_tokens),
                       "phases": phases, "generated": generated.tolist()}
    if untraced:
        total = sum(e["macs"] for e in untraced)
        warnings.warn(f"capture: {total / n:,.0f} MACs per sample ran in ops that are not "
                      "traced; the trace lists them (`accelsim trace info`)", stacklevel=2)
    return TraceData(layers=layers, provenance=prov, untraced=untraced, graph=None)


def _non_finite(model: nn.Module, phase: str, prompt: int) -> str:
    """One line: the model computed NaN or infinity (its masks would count them as non-zeros)."""
    where = getattr(getattr(model, "config", None), "_name_or_path", "") or type(model).__name__
    return (f"{where}: the model computes non-finite values (NaN or infinity) in the {phase} "
            f"step of prompt {prompt}, so its masks would count them as non-zeros; check the "
            "checkpoint's weights and config.json (e.g. a negative rms_norm_eps)")


# -- command line (accelsim trace capture) ------------------------------------------------

def is_decoder_request(args) -> bool:
    """Whether ``accelsim trace capture`` arguments ask for a decoder capture."""
    from accelsim.zoo.llama import DECODERS

    model = getattr(args, "model", None)
    return bool(getattr(args, "prompt_file", None) or getattr(args, "prompt_ids", None)
                or getattr(args, "decode_tokens", None) is not None
                or model in DECODERS or (model is not None and Path(model).is_dir()))


def cli_capture(args) -> int:
    """``accelsim trace capture --model llama_tiny --prompt-file F --decode-tokens N -o OUT``."""
    from accelsim.trace.writer import write_trace

    if not args.model:
        raise AccelsimError("--model is required for a decoder capture (a zoo decoder or a "
                            "checkpoint folder)")
    if args.checkpoint:
        raise AccelsimError("--checkpoint: decoder LLMs load from a checkpoint folder given as "
                            "--model FOLDER")
    if bool(args.prompt_file) == bool(args.prompt_ids):
        raise AccelsimError("a decoder capture needs exactly one of --prompt-file or --prompt-ids")
    if args.teal is not None and not args.prompt_file:
        raise AccelsimError("--teal calibrates on the prompt text: give --prompt-file")
    decode = 0 if args.decode_tokens is None else int(args.decode_tokens)
    if decode < 0:
        raise AccelsimError(f"--decode-tokens: expected an integer >= 0, got {decode}")
    model, tokenizer = load_decoder(args.model, seed=args.seed)
    vocab = getattr(model.config, "vocab_size", None)
    if args.prompt_file:
        prompts = prompts_from_text(args.prompt_file, args.samples, args.prompt_tokens, tokenizer,
                                    vocab)
    else:
        prompts = prompts_from_ids(args.prompt_ids, args.samples, args.prompt_tokens, vocab)
    options = CaptureOptions(samples=args.samples, act_bits=args.act_bits,
                             weight_bits=args.weight_bits, quantize_acts=args.quantize_acts,
                             quantize_weights=args.quantize_weights, threshold=args.threshold)
    provenance = {"model": str(args.model),
                  "dataset": str(args.prompt_file or args.prompt_ids)}
    if args.teal is not None:
        from accelsim.sparsify.teal import ThresholdHooks, calibrate_thresholds

        text = read_prompt_text(args.prompt_file)
        ids = torch.tensor(encode_text(text, tokenizer, vocab), dtype=torch.long)
        length = min(64, max(2, ids.numel() // 4))
        thresholds = calibrate_thresholds(model, ids, args.teal, length)
        provenance["sparsifier"] = {"method": "teal", "target": float(args.teal)}
        with ThresholdHooks(model, thresholds):
            data = capture_decoder(model, prompts, decode, options, provenance)
    else:
        data = capture_decoder(model, prompts, decode, options, provenance)
    write_trace(args.output, data, compress=not args.no_compress)
    steps = data.provenance["decoder"]
    print(f"wrote {args.output}: {len(data.layers)} layers, {data.num_samples} prompts of "
          f"{steps['prompt_tokens']} tokens, prefill + {steps['decode_tokens']} decode steps")
    return 0
