#!/usr/bin/env bash
# Every check that needs a GPU, in one prepared run of at most 8 minutes: the CUDA tests, LeNet-5 to 99.2 % on
# MNIST (CUDA graphs, eager, the tutorial loop), inference against torchvision/timm, ResNet-18 training speed.
#
#   bash benchmarks/device_check.sh --prepare       # here, once: copy MNIST from ../shared into .data/ (git-ignored)
#   bash benchmarks/device_check.sh                 # on the GPU machine, with .data carried along
#   bash benchmarks/device_check.sh --cpu-dry-run   # anywhere: every step on the CPU with tiny sizes (the tests run it)
#
# Needs only what the GPU machine's image has (torch, torchvision, timm, safetensors, scikit-learn, pytest):
# the dry run refuses to import anything else (Streamlit, Plotly, torchinfo, …), so a step that would fail there
# for a missing package fails here first. Each step has a time limit, keeps its output in $OUT (or
# ./device-results/) and a failed step does not stop the next; the exit status says whether all passed.
set -uo pipefail
cd "$(dirname "$0")/.."

mode=gpu
case "${1:-}" in
  --prepare)
    mkdir -p .data/MNIST/raw
    install -m 0644 ../shared/data/MNIST/raw/* .data/MNIST/raw/
    ls -l .data/MNIST/raw
    exit 0 ;;
  --cpu-dry-run) mode=dry ;;
  "") ;;
  *) echo "usage: $0 [--prepare | --cpu-dry-run]" >&2; exit 2 ;;
esac

python=${PYTHON:-python3}
out="${OUT:-device-results}"
mkdir -p "$out"
export PYTHONUNBUFFERED=1
status=0
step() {  # step NAME SECONDS COMMAND...: run it under a time limit, keep its output, remember a failure, go on
  local name=$1 limit=$2
  shift 2
  echo "=== $name (at most ${limit} s): $*"
  local start=$SECONDS
  timeout --kill-after=5 "$limit" "$@" 2>&1 | tee "$out/$name.txt" || { status=1; echo "=== $name FAILED"; }
  echo "=== $name took $((SECONDS - start)) s"
}

if [ "$mode" = dry ]; then
  # Packages the GPU image lacks: importing one of them fails, as it would there.
  blocker=$(mktemp -d)
  trap 'rm -rf "$blocker"' EXIT
  cat >"$blocker/sitecustomize.py" <<'EOF'
import sys
MISSING = {"streamlit", "plotly", "orjson", "torchinfo", "playwright", "ray"}
class _Missing:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in MISSING:
            raise ModuleNotFoundError(f"No module named {name!r} (not on the GPU machine's image)")
        return None
sys.meta_path.insert(0, _Missing())
EOF
  export PYTHONPATH="$blocker${PYTHONPATH:+:$PYTHONPATH}"
  step machine 60 "$python" -c "import torch, torchvision, timm, platform; print(platform.python_version(), torch.__version__, torchvision.__version__)"
  step tests 120 "$python" -m pytest -q -p no:cacheprovider --collect-only tests/test_accelerator.py tests/test_training_graphs.py
  step train_mnist 240 "$python" -m benchmarks.train_mnist --generated 300 --device cpu --recipe 64:1:0.01 --seeds 1 --eager --max-baseline-epochs 1
  step inference 180 "$python" -m benchmarks.inference --device cpu --models resnet18 xception --large-batch 2 --repeats 1
  step train_cifar 180 "$python" -m benchmarks.train_cifar --device cpu --batches 3 --batch-size 4 --no-compile
  exit $status
fi

step machine 60 "$python" -c "import torch, torchvision, platform; print(platform.python_version(), torch.__version__,
torchvision.__version__, torch.cuda.get_device_name() if torch.cuda.is_available() else 'no CUDA')"
step tests 90 "$python" -m pytest -q -p no:cacheprovider -o addopts= tests/test_accelerator.py tests/test_training_graphs.py
# Recipes: the GPU preset (batch 512, 10 epochs) and batch 1024 with fewer steps (the fastest measured); 3 seeds each,
# with CUDA graphs and eagerly. The tutorial loop needs 15 or more epochs, about 90 s on an H200.
step train_mnist 240 "$python" -m benchmarks.train_mnist --mnist .data --seeds 3 --eager \
  --recipe 512:10:0.01 --recipe 1024:8:0.02 --recipe 1024:7:0.02
step inference 90 "$python" -m benchmarks.inference --compile resnet50
step train_cifar 90 "$python" -m benchmarks.train_cifar
exit $status
