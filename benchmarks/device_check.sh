#!/usr/bin/env bash
# Every check that needs a GPU, in one run: the accelerator tests on CUDA, then the three benchmarks.
#
#   bash benchmarks/device_check.sh --prepare   # here, once: copy MNIST from ../shared into .data/ (git-ignored)
#   bash benchmarks/device_check.sh             # on the GPU machine, with .data carried along
#
# Needs only what that machine's image has (torch, torchvision, timm, safetensors, scikit-learn,
# pytest): nothing here imports Streamlit. Each table also goes to $OUT (or ./device-results/).
set -uo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = "--prepare" ]; then
  mkdir -p .data/MNIST/raw
  install -m 0644 ../shared/data/MNIST/raw/* .data/MNIST/raw/
  ls -l .data/MNIST/raw
  exit 0
fi

out="${OUT:-device-results}"
mkdir -p "$out"
export PYTHONUNBUFFERED=1
status=0
step() {  # step NAME COMMAND...: run it, keep its output, remember a failure and go on
  local name=$1
  shift
  echo "=== $name: $*"
  local start=$SECONDS
  "$@" 2>&1 | tee "$out/$name.txt" || status=1
  echo "=== $name took $((SECONDS - start)) s"
}

step machine python3 -c "import torch, torchvision, platform; print(platform.python_version(), torch.__version__,
torchvision.__version__, torch.cuda.get_device_name() if torch.cuda.is_available() else 'no CUDA')"
step tests python3 -m pytest -q -p no:cacheprovider tests/test_accelerator.py
step train_mnist python3 -m benchmarks.train_mnist --mnist .data
step transfer python3 -m benchmarks.transfer
step inference python3 -m benchmarks.inference --compile resnet50
exit $status
