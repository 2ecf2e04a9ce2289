"""Smoke test of `examples/cifar10_retrofit.py --quick`."""

import importlib.util
import json

import pytest

from conftest import REPO_ROOT


def load_script():
    path = REPO_ROOT / "examples" / "cifar10_retrofit.py"
    spec = importlib.util.spec_from_file_location("cifar10_retrofit", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
@pytest.mark.shared_data
def test_quick_run_writes_table_with_worst_case_and_curves(shared_data_dir, tmp_path):
    load_script().main(["--quick", "--data",
                        str(shared_data_dir / "cifar10-subset.npz"),
                        "--out", str(tmp_path)])
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "eps_curves.png", "results.json", "table.md",
    ]
    text = (tmp_path / "table.md").read_text()
    assert "**Worst case 0.01**" in text and "**Worst case 8/255**" in text
    assert "| cnn | D-ReLU input conv |" in text
    assert "BPDA(APGD-CE)" in text
    results = json.loads((tmp_path / "results.json").read_text())["results"]
    assert [r["placement"] for r in results] == ["plain", "dense", "conv"]
    for r in results:
        assert 0.0 <= r["worst_case"]["8/255"] <= r["clean"] <= 1.0
        assert len(r["curves"]["APGD-CE"]) == 2
    assert set(results[1]["mean_caps"]) == {"head_cap"}
    assert set(results[2]["mean_caps"]) == {"input_cap"}


def test_bad_arguments_are_rejected(capsys):
    script = load_script()
    with pytest.raises(SystemExit):
        script.parse_args(["--lam", "0"])
    assert "--lam" in capsys.readouterr().err
