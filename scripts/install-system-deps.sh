#!/usr/bin/env bash
# Installs the system packages the testbed needs when they are missing:
#   prometheus + promtool (the local metrics backend and the rule checker)
#   chromium (headless rendering test of report.html)
# Uses apt-get as root, or sudo without a password; otherwise says exactly what to run.
set -euo pipefail

missing=()
command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)

if [ ${#missing[@]} -eq 0 ]; then
  echo "system packages: prometheus $(prometheus --version 2>&1 | head -n1 | awk '{print $3}'), chromium present"
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "error: missing ${missing[*]} and this system has no apt-get." >&2
  echo "  Install Prometheus >= 2.40 (prometheus and promtool on PATH): https://prometheus.io/download/" >&2
  echo "  and Chromium (for the report rendering test), then run 'make setup' again." >&2
  exit 1
fi

if [ "$(id -u)" -eq 0 ]; then
  SUDO=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  SUDO="sudo -n"
else
  echo "error: missing ${missing[*]}; installing them needs root. Run:" >&2
  echo "  sudo apt-get update && sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
  echo "then 'make setup' again." >&2
  exit 1
fi

echo "installing system packages: ${missing[*]} (apt-get)"
export DEBIAN_FRONTEND=noninteractive
if ! $SUDO apt-get install -y --no-install-recommends "${missing[@]}" >/tmp/testbed-apt.log 2>&1; then
  $SUDO apt-get update >>/tmp/testbed-apt.log 2>&1
  $SUDO apt-get install -y --no-install-recommends "${missing[@]}" >>/tmp/testbed-apt.log 2>&1 || {
    echo "error: apt-get could not install ${missing[*]}; see /tmp/testbed-apt.log" >&2; exit 1; }
fi
# The Debian package ships a system service listening on :9090, the testbed's default Prometheus port.
# The testbed runs its own Prometheus with a generated configuration, so switch the service off where
# systemd runs it (on machines without systemd the package starts nothing).
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
  $SUDO systemctl disable --now prometheus prometheus-node-exporter >/dev/null 2>&1 || true
fi
echo "installed: ${missing[*]}"
