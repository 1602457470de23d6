#!/usr/bin/env bash
# Installs the system packages the testbed needs when they are missing or too old. The list, with minimum
# versions, is scripts/system-packages.txt (Prometheus, Alertmanager, node_exporter, Chromium, Docker,
# debootstrap); testbed/sysdeps.py reads it here and for `testbed doctor`, so both agree.
# Uses apt-get as root, or sudo without a password; otherwise says exactly what to run.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=.venv/bin/python
[ -x "$PY" ] || PY=python3   # sysdeps is standard library only
mapfile -t missing < <("$PY" -m testbed.sysdeps --apt-missing)

if [ ${#missing[@]} -eq 0 ]; then
  echo "system packages: $("$PY" -m testbed.sysdeps | awk -F'\t' '{printf "%s%s %s", sep, $1, $2; sep=", "}' | sed 's/ok //g')"
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "error: missing ${missing[*]} and this system has no apt-get." >&2
  echo "  Install them with your package manager (versions in scripts/system-packages.txt)," >&2
  echo "  e.g. Prometheus >= 2.40 from https://prometheus.io/download/, then run 'make setup' again." >&2
  echo "  'testbed doctor' says what is missing and why." >&2
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
# The Debian packages ship system services on the testbed's default ports (9090, 9093, 9100) and the
# Docker daemon. The testbed runs its own instances with generated configuration (the image test even its
# own dockerd), so switch the services off where systemd runs them (without systemd nothing was started).
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
  $SUDO systemctl disable --now prometheus prometheus-node-exporter prometheus-alertmanager >/dev/null 2>&1 || true
fi
still=$("$PY" -m testbed.sysdeps --apt-missing | tr '\n' ' ')
if [ -n "$still" ]; then
  echo "error: still missing or too old after apt-get: $still(run 'testbed doctor' for details)" >&2
  exit 1
fi
echo "installed: ${missing[*]}"
