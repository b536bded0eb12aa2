#!/usr/bin/env bash
# Installs what a fresh Debian 12 machine lacks to build and test qudao. Idempotent: a second run
# checks, finds everything present, and prints one line.
#
#   - Debian 12 packages (RocksDB, FlatBuffers + flatc, fmt, Boost, doctest, spdlog, CLI11, abseil,
#     nlohmann-json, xxhash, Google Benchmark, a JDK and Maven for the Kafka broker, clang for the
#     libFuzzer targets, python3-flatbuffers for the cross-language golden-vector check);
#   - librdkafka 2.8.0, built from Debian trixie's source package into a cache prefix outside the
#     build tree ($QUDAO_CACHE_DIR, default ~/.cache/qudao). Debian 12's own librdkafka (2.0.2)
#     has known bugs that lose or duplicate data and is never linked.
#
# The trixie deb-src entry reuses the mirror already configured in this machine's apt sources and
# lives in a private apt state directory, so the system's apt configuration is left untouched.
set -euo pipefail

cache_dir=${QUDAO_CACHE_DIR:-$HOME/.cache/qudao}
rdkafka_version=2.8.0
rdkafka_debian_version=2.8.0-1
rdkafka_prefix=$cache_dir/librdkafka-$rdkafka_version

packages=(
  build-essential cmake ninja-build pkg-config ccache git curl python3
  librocksdb-dev libsnappy-dev liblz4-dev libzstd-dev zlib1g-dev libbz2-dev libgflags-dev
  libflatbuffers-dev flatbuffers-compiler
  libfmt-dev libspdlog-dev libcli11-dev libabsl-dev nlohmann-json3-dev libxxhash-dev
  libboost-dev doctest-dev libbenchmark-dev
  libssl-dev libsasl2-dev dpkg-dev
  openjdk-17-jre-headless maven
  clang-14 libclang-rt-14-dev python3-flatbuffers
)

log() { printf 'setup: %s\n' "$*"; }

install_packages() {
  local missing=()
  for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing ${#missing[@]} Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null 2>&1
}

# The first URIs line of the machine's own deb822 sources, or the first deb line of sources.list.
configured_mirror() {
  local m=""
  if compgen -G '/etc/apt/sources.list.d/*.sources' >/dev/null; then
    m=$(awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list.d/*.sources)
  fi
  if [ -z "$m" ] && [ -f /etc/apt/sources.list ]; then
    m=$(awk '$1 == "deb" && $0 !~ /security/ {for (i = 2; i <= NF; i++) if ($i ~ /^(https?|file):/) {print $i; exit}}' /etc/apt/sources.list)
  fi
  [ -n "$m" ] || { echo "setup: cannot find the Debian mirror in /etc/apt sources" >&2; return 1; }
  printf '%s\n' "$m"
}

build_librdkafka() {
  if [ -f "$rdkafka_prefix/lib/librdkafka.so" ] && [ -f "$rdkafka_prefix/include/librdkafka/rdkafka.h" ]; then
    return 0
  fi
  local work; work=$(mktemp -d)
  trap 'rm -rf "$work"' RETURN
  log "building librdkafka $rdkafka_version from Debian trixie sources into $rdkafka_prefix (about 1-2 minutes)"
  mkdir -p "$work/etc" "$work/lists/partial"
  printf 'Types: deb-src\nURIs: %s\nSuites: trixie\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
    "$(configured_mirror)" > "$work/etc/trixie-src.sources"
  local apt_opts=(-q -o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$work/etc"
                  -o "Dir::State::Lists=$work/lists" -o APT::Sandbox::User=root)
  apt-get "${apt_opts[@]}" update >/dev/null
  (cd "$work" && apt-get "${apt_opts[@]}" source --download-only "librdkafka=$rdkafka_debian_version" >/dev/null)
  # apt already checked every file against the signed trixie Sources index; the maintainer's own
  # .dsc signature cannot be checked without debian-keyring, so dpkg-source is told not to try.
  dpkg-source --no-check -x "$work/librdkafka_$rdkafka_debian_version.dsc" "$work/src" >/dev/null
  (cd "$work/src" &&
     ./configure --prefix="$rdkafka_prefix" --disable-gssapi --disable-curl >"$work/configure.log" 2>&1 &&
     make -j"$(nproc)" libs >"$work/make.log" 2>&1 &&
     make install-subdirs >"$work/install.log" 2>&1) || {
    echo "setup: librdkafka build failed; the last lines of its logs:" >&2
    tail -n 30 "$work"/*.log >&2
    return 1
  }
  log "librdkafka $rdkafka_version installed in $rdkafka_prefix"
}

install_packages
build_librdkafka
log "ok (librdkafka $rdkafka_version in $rdkafka_prefix)"
