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
# Host packages for building the RHEL 8 layer's NetworkManager (only when the tree is built)
NM_BUILD_PKGS=(dpkg-dev meson ninja-build pkg-config gcc libc6-dev libglib2.0-dev libudev-dev libsystemd-dev
               libndp-dev uuid-dev libdbus-1-dev libjansson-dev gettext xsltproc python3)
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

# The RHEL 8 layer, /opt/rhel8 (laid over / by an RHEL 8 node): NetworkManager reading ifcfg files.
# Debian builds NetworkManager without its ifcfg-rh settings plugin, so the tree's own version is
# rebuilt from Debian's source package (same version, Debian's patches; apt verifies the download)
# with the plugin, and only the daemon and the plugin go into the layer: nmcli, libnm and the
# helpers stay Debian's, of the same version. plugins=ifcfg-rh,keyfile as RHEL 8 ships it. RHEL 8
# renames a NIC at boot to the DEVICE of the ifcfg file whose HWADDR is its MAC (initscripts'
# udev rule 60-net.rules and its rename_device program); Debian has no initscripts, so the layer
# carries a shell stand-in doing that lookup. About a minute to build on 2 idle cores. Debian's
# wifi/team/wwan/bluetooth device plugins do not load into this daemon (built without them): it
# logs that once and manages Ethernet NICs as Debian's does.
nm_version=$(chroot "$T" dpkg-query -W -f='${Version}' network-manager)
B="$CACHE/nm-build"
rm -rf "$B"; mkdir -p "$B/lists/partial" "$B/archives/partial"
echo "deb-src $mirror $SUITE main" > "$B/sources.list"
APT=(-o "Dir::Etc::SourceList=$B/sources.list" -o Dir::Etc::SourceParts=/nonexistent
     -o "Dir::State::Lists=$B/lists" -o "Dir::Cache::Archives=$B/archives" -o APT::Sandbox::User=root)
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -qq --no-install-recommends "${NM_BUILD_PKGS[@]}" >/dev/null
apt-get "${APT[@]}" update -qq
(cd "$B" && apt-get "${APT[@]}" source -qq "network-manager=$nm_version") > "$B/source.log" 2>&1 || {
  tail -20 "$B/source.log" >&2; exit 1; }
src=$(find "$B" -maxdepth 1 -type d -name 'network-manager-*' | head -1)
(cd "$src" && meson setup "$B/build" --prefix=/usr --libdir=lib/x86_64-linux-gnu \
   --libexecdir=lib/NetworkManager --sysconfdir=/etc --localstatedir=/var -Dbuildtype=plain -Dc_args=-O1 \
   -Difcfg_rh=true -Difupdown=false -Dnmcli=false -Dnmtui=false -Dppp=false -Dmodem_manager=false \
   -Dovs=false -Dwifi=false -Dwext=false -Dintrospection=false -Dvapi=false -Ddocs=false -Dtests=no \
   -Dqt=false -Dselinux=false -Dlibaudit=no -Dpolkit=false -Dconcheck=false -Dlibpsl=false -Dcrypto=null \
   -Debpf=false -Dfirewalld_zone=false -Dsession_tracking=no -Dsession_tracking_consolekit=false \
   -Dsuspend_resume=systemd -Dmore_asserts=no -Dmore_logging=false
 ninja -C "$B/build" src/core/NetworkManager \
   src/core/settings/plugins/ifcfg-rh/libnm-settings-plugin-ifcfg-rh.so) > "$B/build.log" 2>&1 || {
  tail -30 "$B/build.log" >&2; exit 1; }
nm_libdir="usr/lib/x86_64-linux-gnu/NetworkManager/${nm_version%%-*}"
L="$T/opt/rhel8"
mkdir -p "$L/usr/sbin" "$L/$nm_libdir" "$L/etc/NetworkManager/conf.d" "$L/etc/sysconfig/network-scripts" \
         "$L/usr/share/dbus-1/system.d" "$L/usr/lib/udev/rules.d"
install -m 755 "$B/build/src/core/NetworkManager" "$L/usr/sbin/NetworkManager"
install -m 644 "$B/build/src/core/settings/plugins/ifcfg-rh/libnm-settings-plugin-ifcfg-rh.so" "$L/$nm_libdir/"
install -m 644 "$src/src/core/settings/plugins/ifcfg-rh/nm-ifcfg-rh.conf" "$L/usr/share/dbus-1/system.d/"
printf '[main]\nplugins=ifcfg-rh,keyfile\n' > "$L/etc/NetworkManager/conf.d/20-rhel8.conf"
cat > "$L/usr/lib/udev/rules.d/60-net.rules" <<'RULES'
ACTION=="add", SUBSYSTEM=="net", DRIVERS=="?*", ATTR{type}=="1", PROGRAM="/usr/lib/udev/rename_device", RESULT=="?*", NAME="$result"
RULES
cat > "$L/usr/lib/udev/rename_device" <<'SH'
#!/bin/sh
# Stand-in for initscripts' rename_device: print DEVICE of the ifcfg file whose HWADDR is this MAC.
mac=$(cat "/sys/class/net/$INTERFACE/address" 2>/dev/null) || exit 0
for f in /etc/sysconfig/network-scripts/ifcfg-*; do
  [ -f "$f" ] || continue
  hw=$(sed -n 's/^HWADDR=["'"'"']*\([^"'"'"']*\).*/\1/p' "$f" | tr 'A-F' 'a-f')
  [ "$hw" = "$mac" ] || continue
  dev=$(sed -n 's/^DEVICE=["'"'"']*\([^"'"'"']*\).*/\1/p' "$f")
  [ -n "$dev" ] && { echo "$dev"; exit 0; }
done
SH
chmod 755 "$L/usr/lib/udev/rename_device"
rm -rf "$B"
chroot "$T" apt-get clean
rm -f "$T/etc/machine-id"; : > "$T/etc/machine-id"
touch "$T/.complete"
mv "$T" "$TREE"
echo "realnode: built in $(( $(date +%s) - start )) s" >&2
echo "$TREE"
