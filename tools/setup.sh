#!/usr/bin/env bash
# Installs what a fresh Debian 12 machine lacks to build and test qudao. Idempotent: a second run
# checks, finds everything present, and prints one line.
#
#   - Debian 12 packages (RocksDB, FlatBuffers + flatc, fmt, Boost, doctest, spdlog, CLI11, abseil,
#     nlohmann-json, xxhash, Google Benchmark, a JDK and Maven for the Kafka broker, clang for the
#     libFuzzer targets, python3-flatbuffers for the cross-language golden-vector check,
#     prometheus-cpp for /metrics, python3-jsonschema and python3-yaml for the OpenAPI test);
#   - librdkafka 2.8.0, built from Debian trixie's source package into a cache prefix outside the
#     build tree ($QUDAO_CACHE_DIR, default ~/.cache/qudao). Debian 12's own librdkafka (2.0.2)
#     has known bugs that lose or duplicate data and is never linked;
#   - openapi-spec-validator (PyPI, pinned) in a venv in the same cache, which checks that
#     connectors/openapi.yaml is a valid OpenAPI 3.1 document (Debian 12 does not package it).
#
# The trixie sources come through tools/debian_source.sh: the machine's own mirror, a private apt
# state directory, the system's apt configuration left untouched.
set -euo pipefail
. "$(dirname "$0")/debian_source.sh"

cache_dir=${QUDAO_CACHE_DIR:-$HOME/.cache/qudao}
rdkafka_version=2.8.0
rdkafka_debian_version=2.8.0-1
rdkafka_prefix=$cache_dir/librdkafka-$rdkafka_version
openapi_validator_version=0.9.0
openapi_validator_venv=$cache_dir/openapi-spec-validator-$openapi_validator_version

packages=(
  build-essential cmake ninja-build pkg-config ccache git curl python3
  librocksdb-dev libsnappy-dev liblz4-dev libzstd-dev zlib1g-dev libbz2-dev libgflags-dev
  libflatbuffers-dev flatbuffers-compiler
  libfmt-dev libspdlog-dev libcli11-dev libabsl-dev nlohmann-json3-dev libxxhash-dev
  libboost-dev doctest-dev libbenchmark-dev
  libssl-dev libsasl2-dev dpkg-dev
  openjdk-17-jre-headless maven
  clang-14 libclang-rt-14-dev python3-flatbuffers
  prometheus-cpp-dev python3-jsonschema python3-yaml python3-venv
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

build_librdkafka() {
  if [ -f "$rdkafka_prefix/lib/librdkafka.so" ] && [ -f "$rdkafka_prefix/include/librdkafka/rdkafka.h" ]; then
    return 0
  fi
  local work; work=$(mktemp -d)
  trap 'rm -rf "$work"' RETURN
  log "building librdkafka $rdkafka_version from Debian trixie sources into $rdkafka_prefix (about 1-2 minutes)"
  debian_source trixie "librdkafka=$rdkafka_debian_version" "$work/src"
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

install_openapi_validator() {
  [ -x "$openapi_validator_venv/bin/openapi-spec-validator" ] && return 0
  local work; work=$(mktemp -d)
  trap 'rm -rf "$work"' RETURN
  log "installing openapi-spec-validator $openapi_validator_version into a venv at $openapi_validator_venv"
  rm -rf "$openapi_validator_venv"
  /usr/bin/python3 -m venv "$openapi_validator_venv" &&
    "$openapi_validator_venv/bin/pip" install -q --disable-pip-version-check \
      "openapi-spec-validator==$openapi_validator_version" >"$work/pip.log" 2>&1 || {
    echo "setup: openapi-spec-validator install failed:" >&2
    tail -n 30 "$work/pip.log" >&2
    rm -rf "$openapi_validator_venv"
    return 1
  }
}

install_packages
build_librdkafka
install_openapi_validator
log "ok (librdkafka $rdkafka_version in $rdkafka_prefix)"
