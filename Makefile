# Thin wrapper over Meson/Ninja: the two commands a newcomer needs.
#   make run    set up what is missing, build, initialise ./var, start parleyd
#   make check  set up what is missing, build (plain, sanitized, fuzz), run every test
#   make deb    the Debian package, in build-deb/ (the source tree stays clean)
#   make deb-check  the package built, linted, installed in a throwaway root and tested
.POSIX:
.PHONY: all deps deps-check build build-asan build-fuzz run check layers format format-check unit fuzz clean deb deb-check

PY       = /usr/bin/python3
JOBS    ?= $(shell nproc)

all: build

deps:
	@scripts/deps.sh build

deps-check:
	@scripts/deps.sh check

build/build.ninja:
	meson setup build --buildtype=debugoptimized

build: deps build/build.ninja
	ninja -C build

build-asan/build.ninja:
	meson setup build-asan --buildtype=debug -Db_sanitize=address,undefined -Db_lundef=false

build-asan: deps-check build-asan/build.ninja
	ninja -C build-asan

build-fuzz/build.ninja:
	CC=clang meson setup build-fuzz --buildtype=debug -Dfuzzing=true -Db_lundef=false

build-fuzz: deps-check build-fuzz/build.ninja
	ninja -C build-fuzz

run: build
	@scripts/run-dev.sh

# The C sources follow .clang-format; `make format` rewrites them in place.
C_SOURCES = find src tests bench -name '*.[ch]'

format:
	$(C_SOURCES) | xargs clang-format -i

format-check:
	$(C_SOURCES) | xargs clang-format --dry-run -Werror

# The folders of src/ include one another only downward, in the order
# docs/ARCHITECTURE.md gives, and the files of a folder without cycles;
# once built, the symbols the objects use are checked the same way.
layers:
	$(PY) tests/scripts/test_check_layers.py
	$(PY) scripts/check-layers.py

# Every test runs under AddressSanitizer + UndefinedBehaviorSanitizer; the
# unit tests also run in the plain build; each fuzz target runs briefly.
check: deps-check format-check layers build build-asan build-fuzz
	@# a build directory made by `make run` before the test packages were there has no tests
	@[ -d build/tests/unit ] || { meson setup --reconfigure build && ninja -C build; }
	$(PY) scripts/check-layers.py --objects build/libparley.a.p
	meson test -C build --suite unit --print-errorlogs
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	    meson test -C build-asan --print-errorlogs --num-processes $(JOBS)
	scripts/run-fuzz.sh build-fuzz 20

# The Debian package: dpkg-buildpackage in a copy of the tree under
# build-deb/, which also receives the .deb, .changes and .buildinfo.
deb:
	@scripts/deps.sh deb
	scripts/make-deb.sh build-deb

# Not part of `make check` (CI runs it after): the package built, lintian
# (errors fail), then installed into an overlay of / in a private mount
# namespace and tested there (docs/OPERATIONS.md); the machine itself is
# never touched.
deb-check: deb
	lintian --fail-on error --display-level '>=warning' build-deb/parley_*.changes
	scripts/deb-check.sh build-deb

clean:
	rm -rf build build-asan build-fuzz build-deb
