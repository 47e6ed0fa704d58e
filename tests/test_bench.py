"""Smoke tests of the `python -m cypool bench` table (cypool._bench) on tiny cases: it runs,
prints one row per case with every column, and times torch only when it imports."""

import numpy as np
import pytest

from cypool import _bench

TINY = (2, 3, 8, 8)


def _cases():
    return [
        _bench.window_case("max", 2, 2, 0, "NCHW", TINY),
        _bench.window_case("avg", 3, 1, 1, "NHWC", (2, 8, 8, 3)),
    ]


def _rows(text):
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("-----")) + 1
    return [line.split() for line in lines[start:] if line.strip()][: len(_cases())]


@pytest.mark.parametrize("with_torch", [False, True])
def test_run_prints_a_row_per_case(capsys, monkeypatch, with_torch):
    if with_torch:
        pytest.importorskip("torch")
    else:
        monkeypatch.setattr(_bench, "_import_torch", lambda: None)
    assert _bench.run(True, 1, cases=_cases()) == 0
    rows = _rows(capsys.readouterr().out)
    assert [r[:2] for r in rows] == [["max", "2x2/2"], ["avg", "3x3/1"]]
    for row in rows:
        # name, layout, shape, then 8 numeric columns, "-" where there is no peer
        values = row[-8:]
        assert row[-9].startswith("(") and row[-10] in ("NCHW", "NHWC")
        torch_ms, torch_ratio = values[3], values[7]
        if with_torch:
            assert float(torch_ms) >= 0 and float(torch_ratio) > 0
        else:
            assert torch_ms == "-" and torch_ratio == "-"
        # cypool, cy out=, numpy, roof, cy/roof, np/cy (two decimals: tiny cases may print 0.00)
        for v in values[:3] + values[4:7]:
            assert np.isfinite(float(v)) and float(v) >= 0


def test_run_rejects_a_thread_count_below_one(capsys):
    assert _bench.run(True, 0, cases=_cases()) == 2
    assert "--threads must be >= 1, got 0" in capsys.readouterr().out
