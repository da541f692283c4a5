#!/usr/bin/env bash
# Real-node test tier: installs the host tools (systemd-nspawn, QEMU, debootstrap) from Debian's
# packages and builds ONE Debian root file system with a real network stack (systemd, udev, D-Bus,
# NetworkManager, netplan + systemd-networkd, a kernel), cached under .work/realnode/ keyed by a
# hash of the package list and the guest set-up below, so a CI run builds it once and reruns reuse
# it. A fresh clone builds it again (about 2 minutes on an idle 2-core machine, 8 under load):
# keep .work/realnode/ in the CI cache, or set MULTINIC_REALNODE_CACHE to a directory that
# outlives checkouts (e.g. /var/cache/multinic-reconciler/realnode) to share one tree per machine.
#
#   scripts/realnode.sh           install + build (idempotent); prints the tree's path
#   scripts/realnode.sh --path    print where the tree is (or would be), build nothing
#
# The mirror is the one apt already uses on this machine (first URIs/deb line), never a fixed host.
# Needs root. tests/realnode/conftest.py calls it from a session-scoped fixture.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

HOST_PKGS=(systemd-container qemu-system-x86 qemu-utils debootstrap e2fsprogs util-linux iproute2)
GUEST_PKGS=(systemd systemd-sysv udev dbus libpam-systemd iproute2 iputils-ping netplan.io
            network-manager python3 linux-image-amd64 kmod)
SUITE=bookworm
key=$( (printf '%s\n' "$SUITE" "${GUEST_PKGS[@]}"; sed -n '/^# --- guest set-up/,$p' "$0") | sha256sum | cut -c1-16)
CACHE="${MULTINIC_REALNODE_CACHE:-$ROOT/.work/realnode}"
TREE="$CACHE/debian-$key"

if [ "${1:-}" = "--path" ]; then echo "$TREE"; exit 0; fi
if [ "$(id -u)" != "0" ]; then echo "realnode: needs root" >&2; exit 1; fi

missing=()
for pkg in "${HOST_PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "realnode: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ -f "$TREE/.complete" ]; then echo "$TREE"; exit 0; fi

mirror=$(sed -n 's/^URIs: *\([^ ]*\).*/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | grep -v security | head -1 || true)
[ -n "$mirror" ] || mirror=$(awk '$1=="deb"{print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
[ -n "$mirror" ] || { echo "realnode: no Debian mirror configured for apt" >&2; exit 1; }

rm -rf "$TREE.tmp"
mkdir -p "$(dirname "$TREE")"
start=$(date +%s)
echo "realnode: debootstrap $SUITE into $TREE (a few minutes, once)" >&2
debootstrap --variant=minbase --include="$(IFS=,; echo "${GUEST_PKGS[*]}")" "$SUITE" "$TREE.tmp" "$mirror" \
  > "$CACHE/debootstrap.log" 2>&1 || {
  # polkitd's postinst needs logind; libpam-systemd in the chroot settles it (seen on bookworm)
  chroot "$TREE.tmp" apt-get install -y -qq libpam-systemd >> "$CACHE/debootstrap.log" 2>&1 || {
    tail -20 "$CACHE/debootstrap.log" >&2; exit 1; }
}

# --- guest set-up (part of the cache key) ---
T="$TREE.tmp"
echo "node" > "$T/etc/hostname"
# root on the serial console without a password: the test drives the guest through it
sed -i 's/^root:[^:]*:/root::/' "$T/etc/shadow"
mkdir -p "$T/etc/systemd/system/serial-getty@ttyS0.service.d"
# NetworkManager manages every Ethernet device it sees (no ifupdown, no default-wired profiles)
mkdir -p "$T/etc/NetworkManager/conf.d"
printf '[main]\nno-auto-default=*\nplugins=keyfile\n[keyfile]\nunmanaged-devices=none\n' \
  > "$T/etc/NetworkManager/conf.d/10-multinic-test.conf"
# The guest test hook: at boot, run /mnt/ctl/boot.sh from the host's 9p share (QEMU tier).
cat > "$T/etc/systemd/system/multinic-test.service" <<'UNIT'
[Unit]
Description=multinic real-node test hook
After=network.target NetworkManager.service systemd-networkd.service
ConditionVirtualization=vm
[Service]
Type=oneshot
ExecStart=/bin/sh -c 'modprobe 9pnet_virtio; mkdir -p /mnt/ctl /mnt/src; mount -t 9p -o trans=virtio,version=9p2000.L ctl /mnt/ctl && mount -t 9p -o trans=virtio,version=9p2000.L,ro src /mnt/src; sh /mnt/ctl/boot.sh > /mnt/ctl/boot.log 2>&1; sync; systemctl poweroff'
StandardOutput=journal+console
[Install]
WantedBy=multi-user.target
UNIT
chroot "$T" systemctl enable multinic-test.service systemd-networkd.service NetworkManager.service >/dev/null 2>&1
chroot "$T" apt-get clean
rm -f "$T/etc/machine-id"; : > "$T/etc/machine-id"
touch "$T/.complete"
mv "$T" "$TREE"
echo "realnode: built in $(( $(date +%s) - start )) s" >&2
echo "$TREE"
