#!/bin/sh
# Installs the Debian packages Parley needs to build, run and test.
#   scripts/deps.sh build   what `make`/`make run` need
#   scripts/deps.sh check   plus the real peers the tests drive
#   scripts/deps.sh deb     what `make deb` and `make deb-check` need (with build's)
# As root, missing packages are installed with apt-get; otherwise they are
# named and the script fails, so nothing half-works.
set -eu

BUILD_PKGS="gcc make meson ninja-build pkg-config libevent-dev libssl-dev openssl
libsqlite3-dev libc-ares-dev libjansson-dev libinih-dev libpcre2-dev libhttp-parser-dev
zlib1g-dev python3"
CHECK_PKGS="libcmocka-dev clang clang-format libclang-rt-14-dev baresip-core sip-tester coturn
libsrtp2-dev python3-pylibsrtp
dnsmasq-base procps iproute2 linphone-cli util-linux curl vdirsyncer python3-cryptography
man-db groff-base prometheus"

# `make deb` (dpkg-buildpackage, debhelper's meson support), lintian, and
# what `make deb-check` runs in its throwaway root: systemd-analyze, unshare,
# adduser for the postinst, baresip registering to the installed parleyd
DEB_PKGS="dpkg-dev debhelper lintian fakeroot systemd util-linux mount adduser hostname
baresip-core procps"

want="$BUILD_PKGS"
case "${1:-build}" in
    check) want="$want $CHECK_PKGS" ;;
    deb) want="$want $DEB_PKGS" ;;
esac

missing=""
for p in $want; do
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    case "$status" in
        *"install ok installed"*) ;;
        *) missing="$missing $p" ;;
    esac
done

[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
    echo "parley: missing Debian packages:$missing" >&2
    echo "parley: install them with: sudo apt-get install -y$missing" >&2
    exit 1
fi

echo "parley: installing Debian packages:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >&2
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $missing >&2
