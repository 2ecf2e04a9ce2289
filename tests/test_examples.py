"""Smoke tests of every script in examples/, with small settings.

Each example runs in this process through its `main`, and what it returns
and prints is checked. A new example needs an entry in `EXAMPLES`.
"""

import importlib.util
import pathlib

import numpy as np
import pytest

EXAMPLES_DIR = pathlib.Path(__file__).resolve().parent.parent / "examples"


def check_drop_in(returned, printed):
    accuracy = float(printed.split("test accuracy: ")[1].split()[0])
    assert accuracy > 0.8
    assert "caps after training: min" in printed


def check_evaluate_any_model(report, printed):
    assert report.n_examples == 40 and report.suite == "standard"
    assert report.worst_case_accuracy < report.clean_accuracy
    assert "## Robustness of `digits_cnn`" in printed


def check_retrofit_from_python(returned, printed):
    result, report = returned
    assert result.recipe == "drelu" and len(result.epochs) == 3
    assert result.model.name == "small_cnn_head_drelu_retrofit"
    assert report.n_examples == 20 and report.suite == "adaptive"
    assert 0.0 <= report.worst_case_accuracy <= report.clean_accuracy
    assert "caps from 100 to" in printed and "worst case under" in printed


def check_export_and_serve(returned, printed):
    path, class_id, expected, labels = returned
    assert (pathlib.Path(path) / "saved_model.pb").is_file()
    np.testing.assert_array_equal(class_id, expected)
    assert np.mean(class_id == labels) > 0.5
    assert "served classes agree with Keras: 1.000" in printed


# script -> (argv of its main, or None for a main without arguments; check)
EXAMPLES = {
    "drop_in.py": (None, check_drop_in),
    "evaluate_any_model.py": (
        ["--quick", "--n-examples", "40", "--epochs", "3"],
        check_evaluate_any_model,
    ),
    "retrofit_from_python.py": (
        ["--epochs", "3", "--eval-images", "20"],
        check_retrofit_from_python,
    ),
    "export_and_serve.py": (["--out", "served"], check_export_and_serve),
}


def test_every_example_has_a_smoke_test():
    assert sorted(p.name for p in EXAMPLES_DIR.glob("*.py")) == sorted(EXAMPLES)


def test_examples_are_short():
    long = {
        path.name: n for path in EXAMPLES_DIR.glob("*.py")
        if (n := len(path.read_text().splitlines())) > 100
    }
    assert not long, f"examples/ is for short examples: {long}"


# Over about 20 s on 2 cores: none at these settings (retrofit_from_python
# took about 10 s idle with 3 epochs and 20 images).
SLOW = frozenset()


@pytest.mark.parametrize("name", [
    pytest.param(name, marks=pytest.mark.slow) if name in SLOW else name
    for name in sorted(EXAMPLES)
])
def test_example_runs(name, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = importlib.util.spec_from_file_location(
        name.removesuffix(".py"), EXAMPLES_DIR / name
    )
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    argv, check = EXAMPLES[name]
    returned = script.main() if argv is None else script.main(argv)
    check(returned, capsys.readouterr().out)
