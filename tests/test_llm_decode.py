"""Decoder LLMs: capture with prefill/decode phases, TEAL calibration, decode on the simulator.

Needs the optional ``transformers`` (accelsim[llm]); skipped cleanly without it."""
from __future__ import annotations


import numpy as np
import pytest

pytest.importorskip("transformers")
import torch  # noqa: E402

from accelsim.errors import AccelsimError, DataError  # noqa: E402
from accelsim.trace import CaptureOptions, open_trace, write_trace  # noqa: E402
from accelsim.trace.llm import (capture_decoder, encode_text, layer_phase, load_decoder,  # noqa: E402
                                prompts_from_ids, prompts_from_text)

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")


@pytest.fixture(scope="module")
def llama():
    return load_decoder("llama_tiny")[0]


def test_prefill_and_decode_phases_round_trip(llama, tmp_path):
    prompts = torch.randint(0, 256, (2, 8), generator=torch.Generator().manual_seed(0))
    data = capture_decoder(llama, prompts, 2, CaptureOptions())
    phases = [layer_phase(layer) for layer in data.layers]
    per_step = len([p for p in phases if p == ("prefill", 0)])
    assert per_step == 19 and phases.count(("decode", 1)) == phases.count(("decode", 2)) == 19
    by_name = {layer.name: layer.geometry for layer in data.layers}
    assert by_name["prefill/model.layers.0.mlp.up_proj"].H == 8          # all prompt tokens
    assert by_name["decode1/model.layers.0.mlp.up_proj"].H == 1          # matrix-vector
    qk1 = by_name["decode1/model.layers.0.self_attn.attn_qk"]
    qk2 = by_name["decode2/model.layers.0.self_attn.attn_qk"]
    assert (qk1.H, qk1.K, qk2.K) == (1, 4 * 9, 4 * 10)                   # cache grows by one
    assert data.num_samples == 2
    path = write_trace(tmp_path / "d.trace", data)
    read = list(open_trace(path))
    assert [layer_phase(layer) for layer in read] == phases
    # a layer without a tag (an older trace) is phase "all"
    old = open_trace("traces/lenet5_digits_dual.trace")
    assert layer_phase(next(iter(old))) == ("all", None)


def test_decode_masks_are_the_real_zeros(llama):
    """The recorded decode input of up_proj equals the thresholded hidden state."""
    from accelsim.sparsify.teal import ThresholdHooks

    prompts = torch.randint(0, 256, (1, 6), generator=torch.Generator().manual_seed(1))
    seen = {}
    handle = llama.model.layers[0].mlp.up_proj.register_forward_pre_hook(
        lambda m, a: seen.setdefault(a[0].shape[1], a[0].detach().clone()))
    try:
        with ThresholdHooks(llama, {"model.layers.0.mlp.up_proj": 0.5}):
            data = capture_decoder(llama, prompts, 1, CaptureOptions())
    finally:
        handle.remove()
    layer = next(x for x in data.layers if x.name == "decode1/model.layers.0.mlp.up_proj")
    x = seen[1][0, 0]                              # (C,) hidden state of the decode token
    mask = layer.act_mask()[0, :, 0, 0]
    assert np.array_equal(mask, (x.abs() >= 0.5).numpy())
    assert 0 < mask.mean() < 1


def test_local_folder_and_prompt_files(llama, tmp_path):
    folder = tmp_path / "ckpt"
    llama.save_pretrained(folder)                  # safetensors
    assert any(p.suffix == ".safetensors" for p in folder.iterdir())
    model, tokenizer = load_decoder(folder)
    assert tokenizer is None
    ids = torch.tensor([[1, 2, 3, 4]])
    with torch.no_grad():
        assert torch.allclose(model(input_ids=ids).logits, llama(input_ids=ids).logits)
    text = tmp_path / "p.txt"
    text.write_text("hello world\n\nsparse decode!\n")
    prompts = prompts_from_text(text, 2, None)
    assert prompts.tolist() == [list(b"hello world"), list(b"sparse deco")]
    tok = tmp_path / "t.txt"
    tok.write_text("1 2 3\n4,5,6,7\n")
    assert prompts_from_ids(tok, 2, 3, vocab_size=256).tolist() == [[1, 2, 3], [4, 5, 6]]
    tok.write_text("1 2 x\n")
    with pytest.raises(DataError, match="line 1: expected integer"):
        prompts_from_ids(tok, 1, None)
    with pytest.raises(DataError, match="3 prompts requested"):
        prompts_from_text(text, 3, None)
    with pytest.raises(AccelsimError, match="config.json"):
        load_decoder(tmp_path)
    with pytest.raises(AccelsimError, match="vocabulary"):
        capture_decoder(llama, torch.tensor([[300]]), 1, CaptureOptions())
    assert encode_text("ab") == [97, 98]


def test_gpt2_conv1d_decoder_traced(tmp_path):
    model = load_decoder("gpt2_tiny")[0]
    data = capture_decoder(model, torch.randint(0, 256, (1, 5)), 1, CaptureOptions())
    dec = [x for x in data.layers if layer_phase(x) == ("decode", 1)]
    assert len(dec) == 13 and all(x.geometry.H == 1 for x in dec)
    assert data.untraced == []


def test_teal_calibration_reaches_target_per_layer(llama):
    from accelsim.sparsify import teal
    from accelsim.sparsify.text import synthetic_text

    ids = torch.tensor(encode_text(synthetic_text(60, seed=3)))
    calib, held = ids[: ids.numel() // 2], ids[ids.numel() // 2:]
    for target in (0.4, 0.7):
        thresholds, report = teal(llama, calib, held, target, length=32)
        assert len(report.per_layer) == 14
        for name, reached in report.per_layer.items():   # held-out text, within 2 points
            assert abs(reached - target) <= 0.02, (name, reached)
        assert all(t > 0 for t in thresholds.values())
    with pytest.raises(AccelsimError, match="target sparsity"):
        teal(llama, calib, held, 1.0)


@pytest.mark.slow
def test_prosparse_and_tl1_report(llama):
    import copy

    from accelsim.sparsify import prosparse, tl1_finetune
    from accelsim.sparsify.text import synthetic_text

    ids = torch.tensor(encode_text(synthetic_text(60, seed=4)))
    model = copy.deepcopy(llama)
    report = prosparse(model, ids, ids, steps=6, length=32)
    down = [v for k, v in report.per_layer.items() if k.endswith("down_proj")]
    assert all(v > 0.3 for v in down)                     # ReLU zeros, measured
    _, rep = tl1_finetune(copy.deepcopy(llama), ids, ids, 0.5, steps=4, length=32)
    assert abs(rep.mean_sparsity - 0.5) < 0.02 and rep.perplexity > 1


def test_decode_speedup_follows_bound_while_dram_bound(llama):
    """On the shipped memory-bound design, speed-up is within 10% of 1/(1 - s f)."""
    from accelsim.hw import load_hw
    from accelsim.sparsify.study import capture_point, simulate_point
    from accelsim.sparsify.text import synthetic_text

    ids = torch.tensor(encode_text(synthetic_text(40, seed=5)))
    hw = load_hw("hw_configs/edge_npu_lpddr.yaml")
    prompts = ids[:12].reshape(1, 12)
    point = simulate_point(capture_point(llama, prompts, 1, 0.5, ids, length=32), hw)
    assert point.dram_bound and abs(point.reached - 0.5) < 0.05
    assert abs(point.speedup / point.bound - 1) <= 0.10, point
    assert 0.8 < point.f < 1.0
    assert point.dram_bytes < point.dense_dram_bytes and point.energy_saving > 0.2


def test_cli_capture_and_one_line_errors(tmp_path, capsys):
    from accelsim.cli import main

    prompts = tmp_path / "p.txt"
    prompts.write_text("The accelerator skips zero activations.\nEach token streams weights.\n")
    out = tmp_path / "d.trace"
    assert main(["trace", "capture", "--model", "llama_tiny", "--prompt-file", str(prompts),
                 "--samples", "2", "--prompt-tokens", "8", "--decode-tokens", "1", "--teal", "0.5",
                 "-o", str(out)]) == 0
    trace = open_trace(out)
    assert trace.provenance["decoder"]["decode_tokens"] == 1
    assert trace.provenance["sparsifier"] == {"method": "teal", "target": 0.5}
    up = next(x for x in trace if x.name == "decode1/model.layers.0.mlp.up_proj")
    assert 0.3 < 1 - up.stats["act_density"] < 0.7
    capsys.readouterr()
    assert main(["trace", "capture", "--model", "llama_tiny", "--samples", "1",
                 "--decode-tokens", "1", "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: a decoder capture needs exactly one of --prompt-file or --prompt-ids"


def test_held_out_text_shares_no_sentence_with_calibration():
    from accelsim.sparsify.text import disjoint_halves, synthetic_text

    text = synthetic_text(400, seed=0)
    calibration, held = disjoint_halves(text)
    seen, unseen = set(calibration.splitlines()), set(held.splitlines())
    assert seen and unseen and not seen & unseen
    assert sorted(calibration.splitlines() + held.splitlines()) == sorted(text.splitlines())


def test_two_dram_presets_give_different_decode_latency_and_energy(llama):
    """Issue 24: the same NPU over LPDDR5-6400 and over HBM3 decodes a token in different time
    and energy (the layers' DRAM streams through each device), and the rows carry the hit rate."""
    from accelsim.hw import load_hw
    from accelsim.sim.decode import simulate_phases

    prompts = torch.randint(0, 256, (1, 8), generator=torch.Generator().manual_seed(1))
    items = capture_decoder(llama, prompts, 1, CaptureOptions()).layer_traces()
    steps = {}
    for device in ("LPDDR5-6400", "HBM3"):
        hw = load_hw("hw_configs/edge_npu_lpddr.yaml",
                     {"dram.device": device, "dram.bandwidth_gb_per_s": None})
        decode = [r for r in simulate_phases(items, hw) if r["phase"] == "decode"]
        assert len(decode) == 1
        table = decode[0]["layers"]
        assert table["dram_row_hit_rate"].between(0.0, 1.0).all()
        assert (table["dram_cycles"] > 0).any()
        steps[device] = decode[0]
    lp, hbm = steps["LPDDR5-6400"], steps["HBM3"]
    assert lp["latency_s"] != pytest.approx(hbm["latency_s"], rel=1e-3)
    assert lp["energy_uj"] != pytest.approx(hbm["energy_uj"], rel=1e-3)
