#!/usr/bin/env bash
# The GPU check (benchmarks/gpu_check.py): a TRADES retrofit of ResNet50 on
# the CIFAR-10 subset with JAX, mixed bfloat16 and XLA, timed; at most about
# 5 minutes on one GPU. Needs only jax[cuda] and Keras, not TensorFlow.
#
#   bash benchmarks/gpu_check.sh [--data PATH.npz] [--quick]
set -euo pipefail
cd "$(dirname "$0")/.."
export KERAS_BACKEND=jax
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
exec timeout 600 python -u benchmarks/gpu_check.py "$@"
