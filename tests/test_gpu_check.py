"""`benchmarks/gpu_check.sh --quick` on the CPU, without TensorFlow."""

import os
import re
import subprocess

import pytest
from blocked_imports import BLOCK_TENSORFLOW
from conftest import REPO_ROOT

SCRIPT = REPO_ROOT / "benchmarks" / "gpu_check.sh"


def gpu_check(tmp_path, *args):
    # Python imports `sitecustomize` at start-up: TensorFlow is absent in
    # the interpreter the script starts, as on the GPU machine.
    (tmp_path / "sitecustomize.py").write_text(BLOCK_TENSORFLOW)
    environment = {
        **os.environ, "TF_CPP_MIN_LOG_LEVEL": "2",
        "PYTHONPATH": os.pathsep.join(
            [str(tmp_path), os.environ.get("PYTHONPATH", "")]
        ),
    }
    return subprocess.run(
        ["bash", str(SCRIPT), *args], capture_output=True, text=True,
        env=environment, cwd=tmp_path, timeout=600,
    )


@pytest.mark.slow
@pytest.mark.shared_data
def test_quick_gpu_check_runs_on_jax_without_tensorflow(
    shared_data_dir, tmp_path
):
    result = gpu_check(
        tmp_path, "--quick", "--data", str(shared_data_dir / "cifar10-subset.npz")
    )
    assert result.returncode == 0, result.stderr[-3000:]
    printed = result.stdout
    assert "(cpu), JAX" in printed
    assert "arrays ['class_names', 'train_is_lossless', 'x_test'" in printed
    assert "mixed_bfloat16, XLA (jax.jit) on every step" in printed
    training = re.search(
        r"training: 1 epoch of TRADES .* on 2048 images, batch 64: .* "
        r"([\d.]+) images/s after the first step", printed
    )
    evaluation = re.search(
        r"evaluation: suite standard on 16 images: .* ([\d.]+) images/s",
        printed,
    )
    assert training and float(training.group(1)) > 0, printed
    assert evaluation and float(evaluation.group(1)) > 0, printed
    assert "peak device memory: n/a" in printed


def test_gpu_check_refuses_missing_data_in_one_line(tmp_path):
    result = gpu_check(tmp_path, "--quick", "--data", "nowhere.npz")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "gpu_check: error: no .npz file at nowhere.npz; pass --data PATH"
    )
