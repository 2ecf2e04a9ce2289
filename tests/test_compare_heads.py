"""Smoke test of `examples/compare_heads_cifar10.py --quick`."""

import importlib.util
import json

import pytest

from conftest import REPO_ROOT


def load_script():
    path = REPO_ROOT / "examples" / "compare_heads_cifar10.py"
    spec = importlib.util.spec_from_file_location("compare_heads", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
@pytest.mark.shared_data
def test_quick_run_writes_table_json_and_plots(shared_data_dir, tmp_path):
    script = load_script()
    script.main(["--quick", "--data",
                 str(shared_data_dir / "cifar10-subset.npz"),
                 "--out", str(tmp_path)])
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [
        "accuracy.png", "corruptions_drelu.png", "corruptions_relu.png",
        "corruptions_splash.png", "results.json", "results.md",
    ]
    assert all((tmp_path / n).stat().st_size > 0 for n in names)
    text = (tmp_path / "results.md").read_text()
    header = next(line for line in text.splitlines() if line.startswith("| "))
    assert header == (
        "| head | clean | worst case 8/255 | mean corruption acc. | "
        "mCE % (ReLU = 100) |"
    )
    assert "**Settings (reduced):**" in text and "400 of the 50000" in text
    results = json.loads((tmp_path / "results.json").read_text())
    rows = results["rows"]
    assert list(rows) == ["relu", "drelu", "splash"]
    assert rows["relu"]["mce"] == pytest.approx(100.0)
    for row in rows.values():
        assert 0 <= row["worst_case"]["8/255"] <= row["clean"] <= 1
        assert 0 <= row["mean_corruption_accuracy"] <= 1
    attacks = results["details"]["drelu"]["robustness"]["8/255"]["accuracy"]
    assert {"APGD-CE", "BPDA(APGD-CE)", "Transfer(APGD-CE)"} <= set(attacks)


def test_bad_options_are_refused(capsys):
    script = load_script()
    with pytest.raises(SystemExit):
        script.parse_args(["--eps-255", "0"])
    assert "--eps-255 must be > 0" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        script.parse_args(["--epochs", "0"])
    assert "--epochs must be >= 1" in capsys.readouterr().err
