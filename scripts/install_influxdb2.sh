#!/usr/bin/env bash
# Build InfluxDB 2.x OSS (`influxd`) from source, for the live tests of the v2 sink
# (tests/pipeline/test_sink_v2_live.py). Idempotent and cached: nothing to do when
# <cache>/influxdb2-<version>/bin/influxd of the pinned version exists.
#
# Why from source: Debian ships only InfluxDB 1.x, and the release tarballs
# (dl.influxdata.com) and GitHub are out of reach here. The Go module proxy serves the
# influxdb module; Flux's Rust library (libflux) is built by cargo from the flux module's
# sources with crates from crates.io, through InfluxData's pkg-config wrapper (itself a Go
# module) that cgo calls as PKG_CONFIG - the same route as upstream's GNUmakefile.
# Built without the `assets` tag: no web UI (the HTTP API is all the tests need).
#
# Needs: Go >= 1.21 (an older-than-1.23 Go fetches go1.23 from the module proxy:
# GOTOOLCHAIN=auto), cargo/rustc >= 1.72 (flux's pinned channel; any newer stable works,
# RUSTUP_TOOLCHAIN overrides the pin), a C compiler, ~3 GiB of free disk while building.
# Cold build measured: 29 min wall, 14 min CPU on 2 busy cores (docs/RUNNING.md).
#
# Environment: CITYHEALTH_CACHE_DIR (default ~/.cache/cityhealth), INFLUXDB2_JOBS (build
# parallelism, default 2), INFLUXDB2_KEEP_BUILD=1 keeps the 2-3 GiB build tree afterwards.
set -euo pipefail

VERSION=v2.7.12
cache="${CITYHEALTH_CACHE_DIR:-$HOME/.cache/cityhealth}"
dest="$cache/influxdb2-$VERSION"
binary="$dest/bin/influxd"

if [ -x "$binary" ] && "$binary" version 2>/dev/null | grep -q "InfluxDB ${VERSION}"; then
  echo "influxd $VERSION already installed: $binary"
  exit 0
fi

for tool in go cargo cc; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    for dir in /usr/local/go/bin "$HOME/.cargo/bin"; do
      if [ -x "$dir/$tool" ]; then PATH="$dir:$PATH"; fi
    done
  fi
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "error: building influxd $VERSION needs '$tool' (Go >= 1.21, Rust >= 1.72, a C compiler)" >&2
    exit 1
  fi
done

mkdir -p "$cache"
exec 9>"$cache/influxdb2.lock"
flock 9 # one build at a time; a second caller finds the binary afterwards
if [ -x "$binary" ] && "$binary" version 2>/dev/null | grep -q "InfluxDB ${VERSION}"; then
  echo "influxd $VERSION already installed: $binary"
  exit 0
fi

work="${INFLUXDB2_WORK:-$cache/influxdb2-build}"
jobs="${INFLUXDB2_JOBS:-2}"
# Everything the build writes stays under $work: module cache, Go build cache, crates.
export GOPATH="$work/gopath" GOMODCACHE="$work/gopath/pkg/mod" GOCACHE="$work/gocache"
export CARGO_HOME="$work/cargo" GOFLAGS="-mod=mod" GOTOOLCHAIN=auto GOMAXPROCS="$jobs"
export CARGO_BUILD_JOBS="$jobs" CGO_ENABLED=1
# flux pins rust 1.72 in rust-toolchain.toml; rustup must use the installed toolchain
# instead of downloading that one. The wrapper looks for libflux in <src>/target, so
# cargo must not be sent elsewhere.
export RUSTUP_TOOLCHAIN="${RUSTUP_TOOLCHAIN:-stable}"
# flux-core's default `strict` feature is #![deny(warnings)]: lints added to rustc since
# 1.72 (mismatched_lifetime_syntaxes, dead_code) fail the build. Cap lint levels at warn
# for every crate cargo does not cap itself. RUSTFLAGS cannot do it: with --target it
# misses build dependencies, and flux's build script runs flux-core itself.
mkdir -p "$work/tools"
cat >"$work/tools/rustc-cap-lints" <<'WRAPPER'
#!/bin/sh
rustc="$1"
shift
case " $* " in
  *" --cap-lints"* | *" -vV "* | *" - "*) exec "$rustc" "$@" ;;
  *" --crate-name "*) exec "$rustc" "$@" --cap-lints=warn ;;
  *) exec "$rustc" "$@" ;;
esac
WRAPPER
chmod +x "$work/tools/rustc-cap-lints"
export RUSTC_WRAPPER="$work/tools/rustc-cap-lints"
unset CARGO_TARGET_DIR
if ! command -v rustup >/dev/null 2>&1; then unset RUSTUP_TOOLCHAIN; fi

start=$(date +%s)
echo "building influxd $VERSION (Go + Rust, $jobs jobs) under $work"
mkdir -p "$work/tools"
src_json="$(go mod download -json "github.com/influxdata/influxdb/v2@$VERSION")"
moddir="$(printf '%s\n' "$src_json" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
if [ -z "$moddir" ] || [ ! -f "$moddir/go.mod" ]; then
  echo "error: go mod download of influxdb $VERSION failed:" >&2
  printf '%s\n' "$src_json" >&2
  exit 1
fi
# The module cache is read-only; build in a writable copy.
rm -rf "$work/src"
cp -r "$moddir" "$work/src"
chmod -R u+w "$work/src"
cd "$work/src"
# scripts/pkg-config.sh loses its exec bit in the module zip: build the wrapper directly.
go build -o "$work/tools/pkg-config" github.com/influxdata/pkg-config
export PKG_CONFIG="$work/tools/pkg-config"
mkdir -p "$dest/bin"
tmp="$dest/bin/influxd.tmp.$$"
trap 'rm -f "$tmp"' EXIT
nice -n 19 go build -p "$jobs" \
  -tags sqlite_foreign_keys,sqlite_json \
  -ldflags "-s -w -X main.version=${VERSION} -X main.commit=gomodproxy" \
  -o "$tmp" ./cmd/influxd
"$tmp" version
mv -f "$tmp" "$binary"
trap - EXIT
echo "influxd $VERSION installed: $binary ($(du -h "$binary" | cut -f1)) in $(($(date +%s) - start)) s"

if [ "${INFLUXDB2_KEEP_BUILD:-0}" != 1 ]; then
  chmod -R u+w "$work"
  rm -rf "$work"
fi
