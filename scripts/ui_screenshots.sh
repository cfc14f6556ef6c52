#!/usr/bin/env bash
# Screenshots of MLflow's UI as a researcher opens it, taken with headless Chromium.
#   scripts/ui_screenshots.sh STORE_DB OUT_DIR [PAGE ...]
# STORE_DB: an al-run SQLite store (mlflow.db); OUT_DIR: where the PNGs go; each PAGE is a part
# of the UI's address after "#/" (default: experiments/1, the page the UI opens for experiment 1).
# Serves the store with `mlflow ui` on a free loopback port, waits for it, then renders each page
# with --virtual-time-budget so the single-page app has loaded its runs and charts.
set -euo pipefail
store=$(readlink -f "$1"); out=$2; shift 2
pages=("$@"); [ ${#pages[@]} -gt 0 ] || pages=("experiments/1")
here=$(cd "$(dirname "$0")/.." && pwd)
mlflow=${MLFLOW:-$here/.venv/bin/mlflow}
browser=$(command -v chromium || command -v chromium-browser || true)
[ -n "$browser" ] || { echo "Error: chromium is not installed (apt-get install chromium)." >&2; exit 1; }
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p "$out"
MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false "$mlflow" ui --backend-store-uri "sqlite:///$store" --host 127.0.0.1 --port "$port" >"$out/mlflow-ui.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; wait $server 2>/dev/null || true' EXIT
for _ in $(seq 1 120); do
  curl -sf "http://127.0.0.1:$port/health" >/dev/null && break
  sleep 0.5
done
curl -sf "http://127.0.0.1:$port/health" >/dev/null || { echo "Error: mlflow ui did not start (see $out/mlflow-ui.log)." >&2; exit 1; }
index=0
for page in "${pages[@]}"; do
  index=$((index + 1))
  "$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$(mktemp -d)" --window-size=1600,1000 --virtual-time-budget=${BUDGET_MS:-60000} \
    --screenshot="$out/page$index.png" "http://127.0.0.1:$port/#/$page" >/dev/null 2>&1
  echo "$out/page$index.png: #/$page"
done
