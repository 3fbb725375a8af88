#!/bin/bash
# Build the counting guest: a Debian kernel and a busybox initramfs whose init
# (tools/guest/init) counts on the serial console and answers an ACPI
# power-off, for direct kernel boot (Nova's kernel_id/ramdisk_id).
#
#   tools/guest/build.sh [OUTDIR]      (default /var/cache/lifecycle-guest)
#
# Prints the directory holding vmlinuz and initrd.img. The packages come from
# Debian's archive with apt-get download and are unpacked with dpkg-deb: the
# host's own kernel and packages are not touched. Built once per kernel
# version and init script (OUTDIR/<key>/.complete); concurrent callers wait
# on a lock. Exit status: 0 built or already there, 1 failed (message on
# stderr).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
OUT=${1:-/var/cache/lifecycle-guest}
# Modules the init loads, in dependency order (drivers/<path>.ko).
MODULES="virtio/virtio_ring virtio/virtio virtio/virtio_pci_modern_dev
virtio/virtio_pci_legacy_dev virtio/virtio_pci block/virtio_blk input/evdev
acpi/button"

die() { echo "guest-build: ERROR: $*" >&2; exit 1; }

mkdir -p "$OUT"
exec 9>"$OUT/.lock"
flock 9

kernel_pkg() {
    apt-cache depends linux-image-amd64 2>/dev/null |
        awk '/Depends: linux-image-[0-9]/ {print $2; exit}'
}
pkg=$(kernel_pkg)
if [ -z "$pkg" ]; then
    apt-get update -qq >/dev/null 2>&1 || true
    pkg=$(kernel_pkg)
fi
[ -n "$pkg" ] || die "no linux-image-amd64 in the apt lists (apt-get update?)"
kver=$(apt-cache policy "$pkg" | awk '/Candidate:/ {print $2}')
key="$pkg-$kver-$(sha256sum "$HERE/init" "$HERE/build.sh" |
    sha256sum | cut -c1-12)"
dest="$OUT/$key"
if [ -f "$dest/.complete" ]; then
    echo "$dest"
    exit 0
fi

work=$(mktemp -d "$OUT/.build.XXXXXX")
trap 'rm -rf "$work"' EXIT
(cd "$work" && apt-get download -q "$pkg" busybox-static >/dev/null 2>&1) ||
    die "apt-get download $pkg busybox-static failed"
dpkg-deb -x "$work"/linux-image-*.deb "$work/kernel"
dpkg-deb -x "$work"/busybox-static_*.deb "$work/busybox"

root="$work/root"
mkdir -p "$root/bin" "$root/lib/modules"
cp "$work/busybox/bin/busybox" "$root/bin/busybox"
install -m 0755 "$HERE/init" "$root/init"
moddir=$(echo "$work"/kernel/lib/modules/*/kernel/drivers)
for m in $MODULES; do
    [ -f "$moddir/$m.ko" ] || die "module $m.ko missing from $pkg"
    cp "$moddir/$m.ko" "$root/lib/modules/"
done

mkdir -p "$work/out"
cp "$work"/kernel/boot/vmlinuz-* "$work/out/vmlinuz"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -9) \
    > "$work/out/initrd.img"
echo "$pkg $kver" > "$work/out/VERSION"
touch "$work/out/.complete"
# Directories above the files must be traversable by QEMU (libvirt-qemu).
chmod 0755 "$work/out" "$OUT"
chmod 0644 "$work/out/vmlinuz" "$work/out/initrd.img"
rm -rf "$dest"
mv "$work/out" "$dest"
echo "$dest"
