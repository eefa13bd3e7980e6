#!/usr/bin/env bash
# Make (or reuse) the virtual environment and install a requirements file into it:
#   bash scripts/venv.sh [requirements file]      (default: requirements.txt)
#
# - The environment is $VIRTUAL_ENV when one is active, else $VENV, else .venv in the repository.
# - It sees the packages already installed for python3 (--system-site-packages): where they are present
#   (CI, a machine with PyTorch) the install downloads nothing. Debian's own python3 refuses `pip install`
#   outside a virtual environment ("externally managed"); inside this one it works.
# - On Linux without an NVIDIA GPU, PyTorch comes from its CPU-only index (about 200 MB instead of several GB
#   of CUDA wheels), unless it is installed already. TORCH_INDEX_URL chooses the index ("" for PyPI's default).
set -euo pipefail
cd "$(dirname "$0")/.."
requirements=${1:-requirements.txt}
venv=${VIRTUAL_ENV:-${VENV:-.venv}}

if ! "$venv/bin/python" -m pip --version >/dev/null 2>&1; then
  rm -rf "$venv"  # absent, or left without pip by a failed attempt
  if ! python3 -m venv --system-site-packages "$venv"; then
    rm -rf "$venv"
    if command -v apt-get >/dev/null && { [ "$(id -u)" = 0 ] || command -v sudo >/dev/null; }; then
      echo "installing Debian's python3-venv (Debian and Ubuntu ship venv separately)" >&2
      sudo=$([ "$(id -u)" = 0 ] || echo sudo)
      $sudo apt-get update -qq && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
      python3 -m venv --system-site-packages "$venv"
    else
      echo "python3 -m venv failed: install your distribution's venv package (Debian/Ubuntu: python3-venv)" >&2
      exit 1
    fi
  fi
fi

python=("$venv/bin/python")
install=("${python[@]}" -m pip install --quiet --disable-pip-version-check)
if ! "${python[@]}" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('torch') is None)"; then
  index=${TORCH_INDEX_URL-auto}
  if [ "$index" = auto ]; then
    index=""
    if [ "$(uname -s)" = Linux ] && ! command -v nvidia-smi >/dev/null; then
      index=https://download.pytorch.org/whl/cpu
    fi
  fi
  if [ -n "$index" ] && "${python[@]}" -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=10)" \
       "$index/torch/" >/dev/null 2>&1; then
    echo "installing PyTorch (CPU-only: no NVIDIA GPU here) from $index" >&2
    "${install[@]}" --index-url "$index" "torch>=2.10" "torchvision>=0.25"
  elif [ -n "$index" ]; then
    echo "note: $index does not answer; PyTorch comes from PyPI (on Linux: with CUDA, several GB)" >&2
  fi
fi
"${install[@]}" -r "$requirements"
