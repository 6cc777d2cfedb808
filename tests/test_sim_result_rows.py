"""SimResult backed by rows: the same table, totals and CSV as a DataFrame, without pandas."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from accelsim.hw import load_hw
from accelsim.sim import simulate
from accelsim.sim.result import SimResult, totals_of, write_csv
from accelsim.trace import open_trace

TRACE = "traces/lenet5_digits_dual.trace"


def test_write_csv_is_pandas_to_csv(tmp_path):
    values = [1e-05, 1e16, 1e22, -0.0, float("inf"), float("-inf"), float("nan"),
              0.1 + 0.2, 123456789.123, 5e-324, 1.0, np.float64(2.5)]
    rows = [{"x": v, "s": 'a,"b"', "flag": i % 2 == 0, "n": np.int64(i), "none": None}
            for i, v in enumerate(values)]
    rows[3]["late"] = "only here"   # a column first seen in a later row
    write_csv(tmp_path / "ours.csv", rows)
    pd.DataFrame(rows).to_csv(tmp_path / "pandas.csv", index=False)
    assert (tmp_path / "ours.csv").read_bytes() == (tmp_path / "pandas.csv").read_bytes()


@pytest.mark.parametrize("design", ["sparten_like", "eyeriss_v1", "cnvlutin_like"])
def test_rows_and_frame_save_the_same_files(design, tmp_path):
    hw = load_hw(f"hw_configs/{design}.yaml")
    with open_trace(TRACE) as trace:
        result = simulate(trace, hw, samples=2)
    framed = SimResult(layers=pd.DataFrame(result.rows), totals=result.totals, meta=result.meta)
    assert totals_of(result.rows, result.meta) == totals_of(framed.layers, result.meta)
    result.save(tmp_path / "rows.csv")
    framed.save(tmp_path / "frame.csv")
    assert (tmp_path / "rows.csv").read_bytes() == (tmp_path / "frame.csv").read_bytes()
    assert list(result.layers.columns) == list(framed.layers.columns)   # built on first use
    result.layers["extra"] = 1.0   # the frame is the table from now on
    assert "extra" in result.rows[0]


def test_give_layers_or_rows():
    with pytest.raises(ValueError):
        SimResult(totals={})
    with pytest.raises(ValueError):
        SimResult(layers=pd.DataFrame(), rows=[], totals={})


def test_cli_simulate_does_not_import_pandas(tmp_path):
    code = ("import sys; from accelsim.cli import main; "
            f"rc = main(['simulate', '--trace', {TRACE!r}, '--hw', 'hw_configs/sparten_like.yaml', "
            f"'--samples', '1', '-o', {str(tmp_path / 'r.csv')!r}]); "
            "print('PANDAS', 'pandas' in sys.modules); sys.exit(rc)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "PANDAS False" in done.stdout
    assert pd.read_csv(tmp_path / "r.csv")["layer"].tolist()
