"""``dram.device`` in the hardware schema and ``hw show``'s DRAM lines."""
from __future__ import annotations

import copy

import pytest

from accelsim.errors import ConfigError
from accelsim.hw.load import load_hw_dict


def design(minimal_hw: dict, **dram) -> dict:
    data = copy.deepcopy(minimal_hw)
    data["dram"] = dram
    return data


def test_without_device_nothing_changes(minimal_hw):
    hw = load_hw_dict(design(minimal_hw, bandwidth_gb_per_s=12.5), "x.yaml")
    assert hw.dram.device is None and hw.dram.bandwidth_gb_per_s == 12.5
    assert hw.dram.device_pj_per_bit() is None
    from accelsim.hw.summary import dram_device_lines

    assert dram_device_lines(hw) == []


def test_device_defaults_bandwidth_to_peak_times_channels(minimal_hw):
    hw = load_hw_dict(design(minimal_hw, device="DDR4-3200"), "x.yaml")
    assert hw.dram.bandwidth_gb_per_s == pytest.approx(25.6)
    hbm = load_hw_dict(design(minimal_hw, device="HBM2E", channels=4), "x.yaml")
    assert hbm.dram.bandwidth_gb_per_s == pytest.approx(4 * 25.6)
    stack = load_hw_dict(design(minimal_hw, device="HBM3"), "x.yaml")
    assert stack.dram.bandwidth_gb_per_s == pytest.approx(819.2)
    # a sustained limit below the peak is kept; the round trip is exact
    lower = load_hw_dict(design(minimal_hw, device="DDR4-3200", bandwidth_gb_per_s=20), "x.yaml")
    assert lower.dram.bandwidth_gb_per_s == 20
    for hw_ in (hw, hbm, lower):
        assert load_hw_dict(hw_.to_dict()) == hw_
    ideal = load_hw_dict(design(minimal_hw, device="DDR4-3200", ideal=True), "x.yaml")
    assert ideal.dram.bandwidth_gb_per_s is None


@pytest.mark.parametrize("dram, field, words", [
    ({"device": "DDR4-3200", "bandwidth_gb_per_s": 30}, "dram.bandwidth_gb_per_s", "exceeds the peak"),
    ({"bandwidth_gb_per_s": 3, "channels": 2}, "dram.channels", "only meaningful with dram.device"),
    ({"bandwidth_gb_per_s": 3, "page_policy": "closed"}, "dram.page_policy", "only meaningful"),
    ({"device": "DDR4-320"}, "dram.device", "did you mean 'DDR4-3200'"),
    ({"device": "DDR4-3200", "address_mapping": "row-bank"}, "dram.address_mapping", "six fields"),
    ({"device": "DDR4-3200", "page_policy": "shut"}, "dram.page_policy", "expected one of"),
    ({"device": "DDR4-3200", "channels": 0}, "dram.channels", "positive integer"),
])
def test_device_errors_are_one_line(minimal_hw, dram, field, words):
    with pytest.raises(ConfigError) as info:
        load_hw_dict(design(minimal_hw, **dram), "x.yaml")
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"x.yaml: {field}:") and words in message


def test_device_pj_per_bit_and_hw_show_lines(minimal_hw):
    hw = load_hw_dict(design(minimal_hw, device="LPDDR4X-4266", page_policy="closed",
                             address_mapping="bank_interleaved"), "x.yaml")
    seq = hw.dram.device_pj_per_bit("sequential")
    rnd = hw.dram.device_pj_per_bit("random")
    assert 3 < seq < rnd
    from accelsim.hw.summary import dram_device_lines, hierarchy_lines

    lines = dram_device_lines(hw)
    assert len(lines) == 3 and "LPDDR4X-4266 x 1 channel" in lines[0] and "closed page" in lines[0]
    assert f"{seq:6.2f} pJ/bit" in lines[1] and "random 64-B reads" in lines[2]
    assert lines[0] in hierarchy_lines(hw)


def test_hw_show_prints_the_device(tmp_path, minimal_hw, capsys):
    import yaml

    from accelsim.cli import main

    path = tmp_path / "d.yaml"
    path.write_text(yaml.safe_dump(design(minimal_hw, device="HBM2E", channels=2)))
    try:
        main(["hw", "show", str(path)])
    except SystemExit as exc:
        assert not exc.code
    out = capsys.readouterr().out
    assert "device HBM2E x 2 channels" in out and "peak 51.2 GB/s" in out
    assert "sequential reads" in out and "random 64-B reads" in out and "pJ/bit" in out
