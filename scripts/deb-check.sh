#!/bin/sh
# make deb-check's second half, in a private mount namespace (`unshare
# --mount --propagation private`) so that every mount below dies with this
# process: the package from OUT (build-deb) installed into a throwaway root
# and tested there.
#
# The root is an overlay whose lower layer is / itself, read-only through
# the overlay, and whose upper layer is a tmpfs: inside it `dpkg -i` runs
# the real maintainer scripts (adduser, parleyctl init, deb-systemd-helper)
# against a copy-on-write view of this machine, with the libraries, Python
# and baresip already installed here; nothing reaches the machine's own
# files, users or dpkg database. No network, no second Debian to
# bootstrap, and a few seconds instead of debootstrap's minutes.
#   scripts/deb-check.sh OUT      (OUT: where `make deb` put the package)
set -eu
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
    echo "make deb-check: needs root (a mount namespace, an overlay of /, chroot, dpkg -i" \
        "in there; nothing is installed on this machine)" >&2
    exit 1
fi
# first, into a private mount namespace of its own
if [ "${PARLEY_DEB_NS:-}" != 1 ]; then
    PARLEY_DEB_NS=1 exec unshare --mount --propagation private "$0" "$@"
fi
# and truly there: PARLEY_DEB_NS=1 inherited from a caller's environment
# would otherwise put the mounts below (a recursive bind of /dev among
# them, unmounted again by the trap) into this machine's own namespace
# (compared with the parent's: the exec above kept this pid, so the parent
# is whoever ran the script, in the namespace left behind; /proc/1 may be
# unreadable in a container)
parent_ns=$(readlink "/proc/$PPID/ns/mnt" 2>/dev/null || true)
if [ -z "$parent_ns" ] || [ "$(readlink /proc/self/ns/mnt)" = "$parent_ns" ]; then
    echo "make deb-check: not in a mount namespace of its own (PARLEY_DEB_NS is set" \
        "outside?); nothing done" >&2
    exit 1
fi
src=$(pwd)
out=$(realpath "${1:-build-deb}")
set -- "$out"/parley_*_*.deb
deb=$1
[ -f "$deb" ] || { echo "make deb-check: no package in $out (make deb)" >&2; exit 1; }

tmp=$(mktemp -d /tmp/parley-debroot.XXXXXX)
# everything under it is a mount of this namespace: gone with it, but
# unmounted here so that the directory can go too
trap 'cd /; umount -R "$tmp" 2>/dev/null || umount -lR "$tmp"; rmdir "$tmp"' EXIT
mount -t tmpfs -o mode=0755,size=2g tmpfs "$tmp"
mkdir "$tmp/upper" "$tmp/work" "$tmp/root"
root="$tmp/root"
# xino=on: every file reports the overlay's device, as on one file system
# (without it a file's st_dev is its layer's, and walks that stay on one
# file system, like server.user's chown of the state, skip the files)
mount -t overlay overlay -o "lowerdir=/,upperdir=$tmp/upper,workdir=$tmp/work,xino=on" "$root"
mount -t proc proc "$root/proc"
mount --rbind /dev "$root/dev"
mount --rbind -o ro /sys "$root/sys" 2>/dev/null || mount --rbind /sys "$root/sys"
mount -t tmpfs -o mode=1777 tmpfs "$root/tmp"
# the suite's port reservations (tests/lib/harness.py) are shared with the
# tests that run on the machine meanwhile
mkdir -p /tmp/parley-test-ports "$root/tmp/parley-test-ports"
mount --bind /tmp/parley-test-ports "$root/tmp/parley-test-ports"
# no systemd runs in there (no /run/systemd/system): the postinst's
# deb-systemd-invoke starts nothing; policy-rc.d says so for init scripts too
mount -t tmpfs -o mode=0755 tmpfs "$root/run"
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod 0755 "$root/usr/sbin/policy-rc.d"
# the root starts as this machine: no parley of a previous run or install
if chroot "$root" dpkg-query -W parley >/dev/null 2>&1; then
    chroot "$root" dpkg --purge parley >/dev/null
fi

cp "$deb" "$root/tmp/"
echo "deb-check: dpkg -i $(basename "$deb") in an overlay root ($root)"
chroot "$root" dpkg -i "/tmp/$(basename "$deb")"

# the test itself, with the suite's harness (baresip), copied in: the
# source tree may be under /tmp, which is the root's own tmpfs in there
mkdir "$root/tmp/parley-tests"
cp -r "$src/tests/lib" "$src/tests/package" "$root/tmp/parley-tests/"
chroot "$root" env PYTHONPATH=/tmp/parley-tests/lib PYTHONDONTWRITEBYTECODE=1 \
    PARLEY_DEB="/tmp/$(basename "$deb")" PARLEY_TEST_TMP=/tmp \
    python3 /tmp/parley-tests/package/test_installed.py -v
