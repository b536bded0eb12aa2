#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz/ with clang-14 (ASan + UBSan) into their own tree and
# runs each for a bounded time or number of runs, one after the other (2 cores: never two fuzzers,
# nor a fuzzer and the build, at once).
#
#   tools/fuzz.sh --seconds 30                # CI: 30 s per target (the default)
#   tools/fuzz.sh --runs 10000000             # the long run: 10 million inputs per target
#   tools/fuzz.sh --seconds 300 json_fuzz     # one target only (decode_fuzz, json_fuzz)
#
# Tree: $QUDAO_FUZZ_BUILD_DIR, default build-fuzz/ (configured with -DQUDAO_FUZZ=ON; only the fuzz
# targets, qudao_events and the FlatBuffers JSON parser are built, through ccache). The parser is
# built instrumented from the sources of the installed libflatbuffers-dev, fetched once with
# `apt-get source` into $QUDAO_CACHE_DIR (default ~/.cache/qudao); offline, it stays uninstrumented
# (with a warning).
# Corpus: build-fuzz/corpus/<target>/, seeded on every run from tests/golden/v1 (*.bin for
# decode_fuzz, *.json for json_fuzz) and kept between runs, so a run starts from what the earlier
# ones found. json_fuzz also gets a dictionary of the schema's words (build-fuzz/json.dict).
# Logs: build-fuzz/logs/<target>.log (libFuzzer's full output).
# Findings: a crash, leak, timeout (> timeout_s per input) or out-of-memory (> rss_limit_mb) stops
# that target; libFuzzer saves the input in build-fuzz/artifacts/<target>/ and the log ends with
# its path and the stack. Reproduce with: build-fuzz/tests/fuzz/<target> <input file>
# Prints per target the executions done and the wall time. Exits 0 if every target ran clean,
# otherwise with the first failing target's libFuzzer exit code (the other targets still run).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${QUDAO_FUZZ_BUILD_DIR:-$root/build-fuzz}
cache_dir=${QUDAO_CACHE_DIR:-$HOME/.cache/qudao}
. "$root/tools/debian_source.sh"

# Per-input limits, set explicitly rather than left to libFuzzer's defaults (timeout 1200 s).
max_len_bytes=65536   # far above any golden event; decode's own limit is kEventBytesMax (1 MiB)
timeout_s=10          # one input taking this long is a hang: a finding
rss_limit_mb=2048     # also the per-allocation limit (libFuzzer's malloc_limit_mb default)

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }

seconds=30
runs=""
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds=${2:?--seconds needs a number}; runs=""; shift 2 ;;
    --runs) runs=${2:?--runs needs a number}; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    decode_fuzz|json_fuzz) targets+=("$1"); shift ;;
    *) echo "fuzz: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
  esac
done
[ ${#targets[@]} -gt 0 ] || targets=(decode_fuzz json_fuzz)
case "${runs:-$seconds}" in ''|*[!0-9]*) echo "fuzz: --seconds/--runs need a positive integer" >&2; exit 2 ;; esac

log() { printf 'fuzz: %s\n' "$*"; }

# Prints the directory of the FlatBuffers sources of exactly the installed libflatbuffers-dev,
# unpacked once into the cache from this Debian release's source package (tools/debian_source.sh),
# so the fuzz tree can build the JSON parser instrumented (tests/fuzz/CMakeLists.txt). Prints
# nothing if they cannot be fetched.
flatbuffers_source() {
  local version codename dir
  version=$(dpkg-query -W -f='${source:Version}' libflatbuffers-dev)
  codename=$(sed -n 's/^VERSION_CODENAME=//p' /etc/os-release)
  dir=$cache_dir/flatbuffers-$version-src
  if [ ! -f "$dir/src/idl_parser.cpp" ]; then
    debian_source "$codename $codename-updates" "flatbuffers=$version" "$dir" || true
  fi
  [ -f "$dir/src/idl_parser.cpp" ] && printf '%s\n' "$dir"
  return 0
}

build_targets() {
  bash "$root/tools/setup.sh"
  command -v clang++-14 >/dev/null || { echo "fuzz: clang++-14 is missing (tools/setup.sh installs it)" >&2; exit 1; }
  local fb_src
  fb_src=$(flatbuffers_source)
  [ -n "$fb_src" ] || log "WARNING: cannot fetch the FlatBuffers sources; its JSON parser stays uninstrumented"
  # Configured every time (a few seconds) so a changed option or source directory takes effect.
  mkdir -p "$build/logs"
  CC=clang-14 CXX=clang++-14 cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DQUDAO_FUZZ=ON -DQUDAO_FUZZ_FLATBUFFERS_SRC="$fb_src" \
    -DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache >"$build/logs/configure.log" 2>&1 || {
    echo "fuzz: configuring $build failed:" >&2; cat "$build/logs/configure.log" >&2; exit 1; }
  log "compiling ${targets[*]} into $build (clang-14, ASan + UBSan + libFuzzer)"
  cmake --build "$build" -j2 --target "${targets[@]}" -- --quiet
}

# Every word of the schema (field, table, enum and union member names), quoted as JSON strings, so
# json_fuzz reaches the schema's fields instead of guessing their names byte by byte.
write_json_dict() {
  local dict=$1
  {
    printf '"{"\n"}"\n"["\n"]"\n":"\n","\n"true"\n"false"\n"null"\n"-"\n"0"\n'
    sed 's://.*$::' "$root/events/qudao.fbs" | grep -oE '[A-Za-z_][A-Za-z0-9_]*' | sort -u |
      sed 's/.*/"\\"&\\""/'
  } > "$dict"
}

# Seeds the corpus, runs one target, prints its numbers; returns libFuzzer's exit code.
run_target() {
  local target=$1 ext
  local corpus=$build/corpus/$target artifacts=$build/artifacts/$target logfile=$build/logs/$target.log
  case "$target" in decode_fuzz) ext=bin ;; json_fuzz) ext=json ;; esac
  mkdir -p "$corpus" "$artifacts" "$build/logs"
  cp "$root"/tests/golden/v1/*."$ext" "$corpus/"

  local args=(-max_len="$max_len_bytes" -timeout="$timeout_s" -rss_limit_mb="$rss_limit_mb"
              -artifact_prefix="$artifacts/" -print_final_stats=1)
  if [ -n "$runs" ]; then args+=(-runs="$runs"); else args+=(-max_total_time="$seconds"); fi
  if [ "$target" = json_fuzz ]; then
    write_json_dict "$build/json.dict"
    args+=(-dict="$build/json.dict")
  fi

  local bound="$seconds s"
  [ -z "$runs" ] || bound="$runs runs"
  log "$target: running ($bound), corpus $corpus, log $logfile"
  local start rc=0
  start=$(date +%s)
  UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1} \
    "$build/tests/fuzz/$target" "${args[@]}" "$corpus" >"$logfile" 2>&1 || rc=$?
  local wall=$(( $(date +%s) - start ))
  local execs
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$logfile" | tail -n 1)
  if [ "$rc" -eq 0 ]; then
    log "$target: ok, ${execs:-?} executions in ${wall} s wall, corpus $(find "$corpus" -type f | wc -l) inputs"
  else
    log "$target: FAILED (libFuzzer exit $rc) after ${execs:-?} executions in ${wall} s; the end of $logfile:"
    tail -n 60 "$logfile" >&2
  fi
  return "$rc"
}

build_targets
status=0
for t in "${targets[@]}"; do
  rc=0
  run_target "$t" || rc=$?
  if [ "$rc" -ne 0 ] && [ "$status" -eq 0 ]; then status=$rc; fi
done
exit "$status"
