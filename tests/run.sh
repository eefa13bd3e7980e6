#!/usr/bin/env bash
# Install everything the tests need into the virtual environment (scripts/venv.sh), then run them:
# ruff, mypy, then pytest (arguments are passed on). Works offline except for the package registries.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/venv.sh tests/requirements.txt
venv=${VIRTUAL_ENV:-${VENV:-.venv}}
python="$venv/bin/python"

# The browser tests drive Debian's chromium: Playwright cannot download its own browser here. The diagram's
# SVG and PNG downloads are drawn by Graphviz's dot (package graphviz).
missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v dot >/dev/null || missing+=(graphviz)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  elif command -v sudo >/dev/null && command -v apt-get >/dev/null; then
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "note: no apt-get to install ${missing[*]}; the tests that need them will be skipped" >&2
  fi
fi

"$python" -m ruff check .
"$python" -m mypy  # core/ and explorer/, configured in pyproject.toml; fails on any error
# Two test processes (pytest-xdist), a file each at a time: many tests wait on a server, a browser or a worker
# process, so two streams fill a 2-core machine that one leaves half idle (quiet: 516 s → 394 s of pytest).
# TEST_PROCESSES=0 runs them in this process; later arguments win (`bash tests/run.sh -n 0`).
"$python" -m pytest -q --durations=15 -n "${TEST_PROCESSES:-2}" --dist loadfile "$@"
