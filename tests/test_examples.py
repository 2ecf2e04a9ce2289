"""Smoke tests of the experiment scripts in `examples` (`--quick` mode)."""

import importlib.util
import json
import math

import numpy as np
import pytest

from conftest import REPO_ROOT

ADAPTIVE = ("BPDA(APGD-CE)", "Transfer(APGD-CE)", "Square", "Worst case")


def load_script(name):
    path = REPO_ROOT / "examples" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"example_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def header_row(table):
    return next(line for line in table.splitlines() if line.startswith("| "))


@pytest.mark.slow
@pytest.mark.shared_data
def test_srelu_table1_quick_writes_table_with_adaptive_columns(
    shared_data_dir, tmp_path
):
    script = load_script("srelu_table1")
    paths = script.main(
        ["--quick", "--data", str(shared_data_dir / "mnist.npz"),
         "--out", str(tmp_path)]
    )
    assert sorted(p.name for p in paths) == [
        "accuracy.png", "examples.png", "results.json", "table.md"
    ]
    assert all(p.stat().st_size > 0 for p in paths)
    table = (tmp_path / "table.md").read_text()
    for column in ("Clean", "FGSM", "PGD", "CW-L2", *ADAPTIVE):
        assert column in header_row(table)
    assert "**Reduced from the paper:**" in table
    assert "1000 training images (paper: 60000)" in table
    # The paper's number sits beside ours in the paper's columns.
    assert "| 0.01 | none | 97.88 / " in table
    runs = json.loads((tmp_path / "results.json").read_text())["runs"]
    assert [(r["cap"], r["training"]) for r in runs] == [
        ("0.01", "none"), ("0.01", "fgsm")
    ]
    for run in runs:
        accuracies = [run["accuracy"][name] for name in run["accuracy"]
                      if name != "CW-L2"]
        # The worst case is per example, so at most every single attack.
        assert run["worst_case_accuracy"] <= min(accuracies) + 1e-9
        assert run["attacks"][2]["eps"] == "inf"


@pytest.mark.slow
@pytest.mark.shared_data
def test_drelu_mnist_and_statistics_quick(shared_data_dir, tmp_path):
    drelu = load_script("drelu_mnist")
    paths = drelu.main(
        ["--quick", "--data", str(shared_data_dir / "mnist.npz"),
         "--out", str(tmp_path / "runs")]
    )
    assert all(p.stat().st_size > 0 for p in paths)
    table = (tmp_path / "runs" / "table.md").read_text()
    for column in ("APGD-DLR", "CW-L2", *ADAPTIVE):
        assert column in header_row(table)
    assert "| dense | D-ReLU-100 | 97.77 / " in table
    results = json.loads((tmp_path / "runs" / "results.json").read_text())
    assert {(r["method"], r["lam"]) for r in results["runs"]} == {
        ("D-ReLU", 100.0), ("AT", None), ("TRADES-1", None)
    }

    statistics = load_script("drelu_statistics")
    written = statistics.main(
        ["--results", str(tmp_path / "runs" / "results.json"),
         "--out", str(tmp_path / "stats")]
    )
    assert [p.name for p in written] == [
        "statistics.md", "statistics.json", "critical_difference_1.png",
        "critical_difference_2.png",
    ]
    summary = json.loads((tmp_path / "stats" / "statistics.json").read_text())
    assert set(summary["paper attacks"]["methods"]) == {
        "AT", "TRADES-1", "D-ReLU"
    }


def test_statistics_score_table_and_tests_on_synthetic_results(tmp_path):
    statistics = load_script("drelu_statistics")
    rng = np.random.default_rng(0)
    names = ("FGSM", "PGD", "APGD-CE", "APGD-DLR", "CW-L2", "Square",
             "BPDA(APGD-CE)", "Transfer(APGD-CE)")
    level = {"AT": 0.5, "TRADES-1": 0.6, "D-ReLU": 0.9}
    runs = []
    for seed in (0, 1, 2):
        for method, base in level.items():
            values = base + 0.01 * rng.standard_normal(len(names) + 1)
            runs.append(dict(
                arch="dense", method=method, seed=seed,
                lam=100.0 if method == "D-ReLU" else None,
                accuracy=dict(zip(names, values[:-1])),
                worst_case=values[-1],
            ))
    # A D-ReLU run at another lambda is part of the sweep, not of Table 1.
    runs.append(dict(runs[2], lam=1.0, accuracy=dict.fromkeys(names, 0.0)))
    results = {"paper_lambda": {"dense": 100.0}, "runs": runs}

    methods, settings, table = statistics.score_table(
        [results], statistics.SETTINGS["paper attacks"]
    )
    assert methods == ["AT", "D-ReLU", "TRADES-1"]
    assert len(settings) == 15 and table.shape == (3, 15)
    np.testing.assert_allclose(table.mean(axis=1), [0.5, 0.9, 0.6], atol=0.02)

    statistics.analyse([results], tmp_path)
    summary = json.loads((tmp_path / "statistics.json").read_text())
    paper = summary["paper attacks"]
    # D-ReLU wins every setting and AT loses every one.
    assert paper["average_ranks"] == {
        "AT": 3.0, "D-ReLU": 1.0, "TRADES-1": 2.0
    }
    assert paper["anova"]["F"] > paper["anova"]["critical"]
    assert math.isinf(paper["friedman"]["iman_davenport"])
    text = (tmp_path / "statistics.md").read_text()
    assert "best rank D-ReLU (1.00) is significantly better than AT" in text


def test_srelu_table1_rejects_bad_cap():
    script = load_script("srelu_table1")
    with pytest.raises(SystemExit):
        script.parse_args(["--caps", "0"])


def test_drelu_mnist_rejects_negative_lambda_and_repeated_seeds():
    script = load_script("drelu_mnist")
    with pytest.raises(SystemExit):
        script.parse_args(["--lambdas", "-1"])
    with pytest.raises(SystemExit):
        script.parse_args(["--seeds", "0", "0"])
    assert script.parse_args([]).lambdas == [0.0] + [
        10.0 ** k for k in range(-7, 5)
    ]


@pytest.mark.shared_data
def test_srelu_layer_position_quick_writes_curves(shared_data_dir, tmp_path):
    script = load_script("srelu_layer_position")
    paths = script.main(
        ["--quick", "--data", str(shared_data_dir / "mnist.npz"),
         "--out", str(tmp_path)]
    )
    assert [p.name for p in paths] == ["table.md", "results.json",
                                       "curves.png"]
    assert all(p.stat().st_size > 0 for p in paths)
    table = (tmp_path / "table.md").read_text()
    for column in ("PGD", *ADAPTIVE):
        assert column in header_row(table)
    runs = json.loads((tmp_path / "results.json").read_text())["runs"]
    assert [r["max_value"] for r in runs] == [0.01, 0.1]
    for run in runs:
        assert run["worst_case"] <= min(run["accuracy"].values()) + 1e-9


def test_set_caps_changes_only_the_caps():
    script = load_script("srelu_layer_position")
    model = script.build_model("general", "both", 0.1)
    before = [w.copy() for w in model.get_weights()]
    script.set_caps(model, 0.03)
    caps = [layer.max_value.numpy() for layer in model.layers
            if isinstance(layer, script.SReLU)]
    assert len(caps) == 2 and all(np.allclose(c, 0.03) for c in caps)
    after = model.get_weights()
    changed = [not np.array_equal(a, b) for a, b in zip(before, after)]
    assert sum(changed) == 2
