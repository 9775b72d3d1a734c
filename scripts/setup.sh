#!/usr/bin/env bash
# One-time setup of a fresh Debian/Ubuntu machine (root or sudo): the system packages
# DCNR needs, then the npm dependencies (which also build the OpenBLAS addon).
#   nats-server      every test and `dcnr train` without --nats starts one
#   libopenblas-dev  the CPU kernel backend (falls back to gpu.js without it)
#   build-essential  compiles that addon
#   chromium         the dashboard's end-to-end browser test (driven by playwright-core)
#   docker-compose   with DCNR_SETUP_COMPOSE=1: validates docker-compose.yml (CI)
#   python3-torch    with DCNR_SETUP_TORCH=1: the PyTorch baseline of `dcnr bench`
#                    (+ libopenblas0-pthread, without which torch uses the slow reference BLAS)
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v nats-server >/dev/null 2>&1 || missing+=(nats-server)
dpkg -s libopenblas-dev >/dev/null 2>&1 || missing+=(libopenblas-dev)
{ command -v make && command -v gcc; } >/dev/null 2>&1 || missing+=(build-essential)
[ -x /usr/bin/chromium ] || missing+=(chromium)
# Only to validate docker-compose.yml offline (no Docker engine needed); CI asks for it.
[ "${DCNR_SETUP_COMPOSE:-0}" = 1 ] && ! command -v docker-compose >/dev/null 2>&1 && missing+=(docker-compose)
if [ "${DCNR_SETUP_TORCH:-0}" = 1 ]; then
  /usr/bin/python3 -c 'import torch' >/dev/null 2>&1 || missing+=(python3-torch)
  dpkg -s libopenblas0-pthread >/dev/null 2>&1 || missing+=(libopenblas0-pthread)
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: apt-get install ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
echo "setup: $(nats-server --version)"

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: npm ci"
  npm ci --no-audit --no-fund
fi
