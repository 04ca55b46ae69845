#!/bin/sh
# make deb: builds parley_VERSION_ARCH.deb with dpkg-buildpackage -b in a
# copy of the source tree, OUT/src/parley-VERSION, because dpkg-buildpackage
# writes its results to the parent directory and debhelper its work files
# into debian/: the tree itself stays clean. The results go to OUT.
#   scripts/make-deb.sh [OUT]      (default build-deb)
set -eu
cd "$(dirname "$0")/.."
out=${1:-build-deb}

version=$(sed -n "s/^  version : '\(.*\)',$/\1/p" meson.build)
deb_version=$(dpkg-parsechangelog -S Version)
case "$deb_version" in
    "$version"-*) ;;
    *)
        echo "make deb: debian/changelog says $deb_version, meson.build $version:" \
            "add a changelog entry (dch -v $version-1)" >&2
        exit 1
        ;;
esac

# OUT is emptied: never the tree itself, a directory above it, or /
# (`make-deb.sh .` or `..` would otherwise delete the sources)
real_out=$(realpath -m -- "$out")
case "$(pwd -P)/" in
    "$real_out"/*)
        echo "make deb: OUT ($out) would contain the source tree; choose another" >&2
        exit 1
        ;;
esac
[ "$real_out" != / ] || { echo "make deb: OUT is /" >&2; exit 1; }
rm -rf "$out"
copy="$out/src/parley-$version"
mkdir -p "$copy"
# The files of the tree, committed or not, without what .gitignore names
# (build directories, ./var); outside a git checkout, all but those.
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    # shellcheck disable=SC2016 # the inner shell expands them
    git ls-files -z --cached --others --exclude-standard |
        xargs -0 sh -c 'for f; do [ -e "$f" ] && printf "%s\0" "$f"; done' sh |
        tar --null -T - -cf - | tar -xf - -C "$copy"
else
    tar --exclude='./build*' --exclude=./var --exclude=./.git -cf - . | tar -xf - -C "$copy"
fi

jobs=$(nproc)
(cd "$copy" && dpkg-buildpackage -us -uc -b -j"$jobs") >"$out/build.log" 2>&1 || {
    tail -40 "$out/build.log" >&2
    echo "make deb: dpkg-buildpackage failed; the whole log is $out/build.log" >&2
    exit 1
}
mv "$out"/src/*.deb "$out"/src/*.changes "$out"/src/*.buildinfo "$out"/
ls "$out"/*.deb
