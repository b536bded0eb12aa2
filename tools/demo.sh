#!/usr/bin/env bash
# The demo in one command on a fresh Debian 12 machine: install, build, then `qudao demo` on the
# embedded broker. Arguments go to `qudao demo` (e.g. --duration 30, --http-port 8080).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bash "$root/tools/build.sh"
exec "${QUDAO_BUILD_DIR:-$root/build}/tools/qudao" demo "$@"
