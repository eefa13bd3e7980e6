#!/usr/bin/env bash
# Install the app into the virtual environment (scripts/venv.sh) and start it at http://localhost:8501.
# Extra arguments go to `streamlit run`, e.g. `bash scripts/app.sh --server.port 8600`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/venv.sh requirements.txt
venv=${VIRTUAL_ENV:-${VENV:-.venv}}
exec "$venv/bin/python" -m streamlit run explorer/app.py "$@"
