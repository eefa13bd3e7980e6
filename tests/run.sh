#!/usr/bin/env bash
# Install everything the tests need, then run them: ruff, then pytest (arguments are passed on).
# Works offline except for the package registries (PyPI, Debian).
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore -r tests/requirements.txt

# The browser tests drive Debian's chromium: Playwright cannot download its own browser here.
if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  elif command -v sudo >/dev/null && command -v apt-get >/dev/null; then
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "note: no /usr/bin/chromium and no apt-get; the browser tests will be skipped" >&2
  fi
fi

python3 -m ruff check .
python3 -m mypy  # core/ and explorer/, configured in pyproject.toml; fails on any error
python3 -m pytest -q --durations=10 "$@"
