#!/usr/bin/env bash
# The tests in one command on a fresh Debian 12 machine: install, build, then every test through
# CTest — unit tests, and integration tests against a real Apache Kafka broker that CTest starts
# and stops with tools/kafka.sh. Arguments go to ctest (e.g. -R unit, -V).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${QUDAO_BUILD_DIR:-$root/build}
bash "$root/tools/build.sh"
cd "$build"
exec ctest --output-on-failure "$@"
