"""`benchmarks/attack_speed.py --quick`: one table, TensorFlow, JAX and ART."""

import importlib.util
import math
import os
import re
import subprocess
import sys

import pytest
from conftest import REPO_ROOT

SCRIPT = REPO_ROOT / "benchmarks" / "attack_speed.py"
COLUMNS = [
    "model", "attack", "unit", "ours TF", "ours JAX", "ART", "TF/ART",
    "JAX/TF", "pass TF", "pass JAX", "TF/floor", "JAX/floor",
]


def table_rows(printed):
    """Each row of the table as a dict of its columns, the header checked."""
    lines = printed.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("model"))
    names = [name for name in COLUMNS if name in lines[header]]
    assert names == COLUMNS, lines[header]
    rows = []
    for line in lines[header + 2:]:
        if not line.startswith(("dense_net", "shallow_cnn")):
            break
        cells = line.split()
        assert len(cells) == len(COLUMNS), line
        rows.append(dict(zip(COLUMNS, cells)))
    return rows


def number(cell):
    """A cell's number, its `x` and goal star dropped."""
    return float(cell.rstrip("*").rstrip("x"))


@pytest.mark.slow
def test_quick_attack_speed_prints_tensorflow_jax_art_and_square():
    # One model: the other's rows come from the same code.
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--models", "dense_net"],
        capture_output=True,
        text=True, cwd=REPO_ROOT, timeout=600,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "interleaved runs of 1 compiled copy each" in result.stdout
    rows = table_rows(result.stdout)
    assert [(r["model"], r["attack"], r["unit"]) for r in rows] == [
        (model, attack, unit)
        for model in ("dense_net",)
        for attack, unit in (
            ("PGD-2", "img/s"), ("APGD-CE-10", "img/s"),
            ("Square-20", "query/s"),
        )
    ]
    for row in rows:
        values = {name: number(row[name]) for name in COLUMNS[3:]}
        assert all(math.isfinite(v) and v > 0 for v in values.values()), row
        # The ratios are those of the printed throughputs (rounded to units).
        tf_art = values["ours TF"] / values["ART"]
        assert values["TF/ART"] == pytest.approx(tf_art, rel=0.1), row
        jax_tf = values["ours JAX"] / values["ours TF"]
        assert values["JAX/TF"] == pytest.approx(jax_tf, rel=0.1), row
    assert "Goals: TF/ART >= 1, JAX/TF >= 1, ours/floor <= 1.2" in result.stdout
    # Why JAX may be slower: TensorFlow's pass when XLA compiles it.
    xla = re.search(r"compiled by XLA .*: dense_net ([\d.]+) ms\n",
                    result.stdout)
    assert xla and float(xla.group(1)) > 0, result.stdout
    assert "shallow_cnn" not in result.stdout


@pytest.fixture
def script(monkeypatch):
    """The script imported in this process, as a module."""
    # It sets the backend on import; monkeypatch restores it after.
    monkeypatch.setenv("KERAS_BACKEND", "tensorflow")
    spec = importlib.util.spec_from_file_location("attack_speed", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("option", ["--batch", "--repeats", "--copies"])
def test_attack_speed_refuses_a_count_below_one(option, script, monkeypatch,
                                               capsys):
    monkeypatch.setattr(sys, "argv", [str(SCRIPT), option, "0"])
    with pytest.raises(SystemExit):
        script.main()
    assert f"{option} must be at least 1, got 0" in capsys.readouterr().err


def test_attack_speed_keeps_the_fastest_of_its_compiled_copies(script,
                                                               monkeypatch):
    built = []
    original = script.ours

    def counted(*args):
        built.append(args[1])
        return original(*args)

    monkeypatch.setattr(script, "ours", counted)
    # Each copy's time, in the order `fastest` sees the runs.
    times = iter([0.5, 0.2, 0.1, 0.4])
    monkeypatch.setattr(script, "seconds", lambda run: next(times))
    import keras
    import numpy as np

    model = keras.Sequential([
        keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(3)
    ])
    x = np.full((4, 28, 28, 1), 0.5, "float32")
    found, work = script.time_ours(
        model, x, np.arange(4) % 3, ("PGD-2", 2, "gradient"), 1, 2
    )
    assert built == ["PGD-2", "PGD-2"] and work == 4
    # Runs: ours 0, floor 0, ours 1, floor 1.
    assert found == {"ours": 0.1, "floor": 0.2}
