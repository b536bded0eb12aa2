#!/usr/bin/env bash
# Installs what is missing (tools/setup.sh), then configures and builds qudao into build/ (or
# $QUDAO_BUILD_DIR). Incremental: a second run rebuilds only what changed.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${QUDAO_BUILD_DIR:-$root/build}
bash "$root/tools/setup.sh"
if [ ! -f "$build/CMakeCache.txt" ]; then
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
echo "build: compiling into $build (2 cores; the first build takes a few minutes)"
cmake --build "$build" -j2 -- --quiet
