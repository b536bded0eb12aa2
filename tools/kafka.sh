#!/usr/bin/env bash
# Runs a real single-node Apache Kafka broker on this machine for tests, benchmarks and local use:
# one JVM in KRaft mode (combined broker + controller, no ZooKeeper), bound to 127.0.0.1 only.
#
#   tools/kafka.sh start [--port N]      start it (harmless if it is already running); waits until
#                                        the broker serves requests, then prints its bootstrap address
#   tools/kafka.sh stop  [--port N] [--wipe]
#                                        controlled shutdown (SIGTERM, SIGKILL after 30 s); harmless
#                                        if not running; --wipe also deletes the state directory
#   tools/kafka.sh status    [--port N]  prints pid, address and version; exit 0 if running, 1 if not
#   tools/kafka.sh bootstrap [--port N]  prints the bootstrap address (127.0.0.1:PORT), checks nothing
#   tools/kafka.sh logs      [--port N]  prints the path of the broker log
#   tools/kafka.sh wipe      [--port N]  same as `stop --wipe`
#
# Stdout carries only the answer (the address, status line or log path), so
# `BOOTSTRAP=$(tools/kafka.sh start)` works; progress lines (prefixed "kafka.sh:") and errors go to
# stderr. A failed start exits non-zero and prints the tail of the broker log. The broker runs
# detached (own session, no inherited descriptors), so it outlives the shell that started it.
#
# Where things are kept:
#   - Kafka's jars: fetched once per version with Maven (`mvn dependency:copy-dependencies` on a small
#     pom this script writes) into $QUDAO_CACHE_DIR/kafka-VERSION/libs, outside the build tree, and
#     reused from there (no mvn call when present). Maven uses its default repository and ~/.m2.
#   - Broker state: $QUDAO_KAFKA_DIR (default /tmp/qudao-kafka-PORT), owned by this script:
#     server.properties, log4j config, data/ (KRaft metadata + topic logs), kafka.pid,
#     broker.log (the broker's log; the previous run's is kept as broker.prev.log) and stdout.log
#     (the JVM's own output). `stop` keeps all of it except the pid file; `stop --wipe` deletes it.
#
# Environment:
#   QUDAO_KAFKA_PORT             client port (default 19092; `--port N` wins over it)
#   QUDAO_KAFKA_CONTROLLER_PORT  KRaft controller port (default PORT+1)
#   QUDAO_KAFKA_DIR              state directory (default /tmp/qudao-kafka-PORT)
#   QUDAO_KAFKA_VERSION          Apache Kafka version (default 3.9.1; 4.x works too: it logs
#                                through log4j2, so the pom and logging config differ by major)
#   QUDAO_CACHE_DIR              cache root for the jars (default ~/.cache/qudao)
#   QUDAO_KAFKA_JAVA             java binary (default: java from PATH; Java 17+)
#   QUDAO_KAFKA_HEAP_OPTS        JVM heap options (default "-Xmx1g -Xms256m")
#   QUDAO_KAFKA_START_TIMEOUT    seconds to wait for the broker to serve (default 60)
#   QUDAO_KAFKA_STOP_TIMEOUT     seconds to wait for a clean shutdown before SIGKILL (default 30)
#
# Broker settings are for tests on a small machine: replication factor 1 everywhere, 4 partitions
# per auto-created topic, no group rebalance delay, bounded retention. Clients must use
# 127.0.0.1:PORT (the advertised address). A state directory formatted by one Kafka version is not
# reused by another (Kafka refuses some downgrades); `stop --wipe` first when switching versions.
set -euo pipefail

prog=kafka.sh
log() { printf '%s: %s\n' "$prog" "$*" >&2; }  # progress goes to stderr: stdout is the address
die() { printf '%s: error: %s\n' "$prog" "$*" >&2; exit 1; }

usage() {
  sed -n '2,/^set -euo pipefail$/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"
}

# ---- arguments ----------------------------------------------------------------------------------
cmd=""
port=${QUDAO_KAFKA_PORT:-19092}
wipe=0
while [ $# -gt 0 ]; do
  case $1 in
    -h|--help|help) usage; exit 0 ;;
    --port) [ $# -ge 2 ] || die "--port needs a value"; port=$2; shift 2 ;;
    --port=*) port=${1#--port=}; shift ;;
    --wipe) wipe=1; shift ;;
    start|stop|status|bootstrap|logs|wipe)
      [ -z "$cmd" ] || die "only one command at a time (got '$cmd' and '$1')"; cmd=$1; shift ;;
    *) die "unknown argument '$1' (see $0 --help)" ;;
  esac
done
[ -n "$cmd" ] || { usage >&2; exit 2; }
[ "$cmd" = wipe ] && { cmd=stop; wipe=1; }
[ $wipe -eq 0 ] || [ "$cmd" = stop ] || die "--wipe goes with stop"

valid_port() { [[ $1 =~ ^[0-9]+$ ]] && [ "$1" -ge 1 ] && [ "$1" -le 65535 ]; }
valid_port "$port" || die "bad port '$port'"
cport=${QUDAO_KAFKA_CONTROLLER_PORT:-$((port + 1))}
if ! valid_port "$cport" || [ "$cport" = "$port" ]; then die "bad controller port '$cport'"; fi

version=${QUDAO_KAFKA_VERSION:-3.9.1}
[[ $version =~ ^[0-9]+\.[0-9]+\.[0-9]+([.-][A-Za-z0-9.-]+)?$ ]] || die "bad Kafka version '$version'"
major=${version%%.*}
[ "$major" -ge 3 ] || die "Kafka $version is too old for this script (needs 3.x KRaft or newer)"
state=${QUDAO_KAFKA_DIR:-/tmp/qudao-kafka-$port}
cache=${QUDAO_CACHE_DIR:-$HOME/.cache/qudao}/kafka-$version
libs=$cache/libs
java=${QUDAO_KAFKA_JAVA:-java}
heap_opts=${QUDAO_KAFKA_HEAP_OPTS:--Xmx1g -Xms256m}
start_timeout=${QUDAO_KAFKA_START_TIMEOUT:-60}
stop_timeout=${QUDAO_KAFKA_STOP_TIMEOUT:-30}
address=127.0.0.1:$port
pid_file=$state/kafka.pid
broker_log=$state/broker.log
stdout_log=$state/stdout.log
marker=$state/.qudao-kafka   # says this directory is ours (so --wipe may delete it)

# ---- helpers ------------------------------------------------------------------------------------
# True if something accepts TCP connections on 127.0.0.1:$1.
# shellcheck disable=SC2016  # $0 is expanded by the inner bash
port_open() { timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$0"' "$1" 2>/dev/null; }

# True if pid $1 is a Kafka broker running on this state directory's server.properties.
is_our_broker() {
  local cmdline
  [ -r "/proc/$1/cmdline" ] || return 1
  cmdline=$(tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null) || return 1
  [[ $cmdline == *" kafka.Kafka $state/server.properties"* ]]
}

# Prints the broker's pid if it runs: from the pid file, else (pid file lost) by looking at /proc.
broker_pid() {
  local pid p
  if [ -f "$pid_file" ]; then
    pid=$(cat "$pid_file" 2>/dev/null || true)
    if [[ $pid =~ ^[0-9]+$ ]] && is_our_broker "$pid"; then echo "$pid"; return 0; fi
  fi
  for p in /proc/[0-9]*; do
    p=${p#/proc/}
    if is_our_broker "$p"; then echo "$p"; return 0; fi
  done
  return 1
}

# True once broker pid $1 has logged that it started (remembered in $state/serving, since the
# line may later roll out of broker.log).
started() {
  [ "$(cat "$state/serving" 2>/dev/null)" = "$1" ] && return 0
  # "[KafkaRaftServer nodeId=1] Kafka Server started", logged once the broker is unfenced.
  grep -qsF 'Kafka Server started' "$broker_log" "$broker_log".[0-9]* || return 1
  echo "$1" >"$state/serving"
}

show_log_tail() {
  local f
  for f in "$broker_log" "$stdout_log"; do
    [ -s "$f" ] || continue
    printf '%s: ---- last 40 lines of %s ----\n' "$prog" "$f" >&2
    tail -n 40 "$f" >&2
  done
  printf '%s: ---- end of log ----\n' "$prog" >&2
}

# Serializes start/stop on one state directory.
lock_state() {
  mkdir -p "$state"
  exec 9<"$state"
  flock 9
}

# ---- jars ---------------------------------------------------------------------------------------
write_pom() {
  local logging_deps
  if [ "$major" -ge 4 ]; then
    # Kafka 4 logs to log4j2, still through SLF4J 1.7 (its pom pins slf4j-api 1.7.36 up to 4.4.0 at
    # least), so the binding is log4j-slf4j-impl; log4j-slf4j2-impl would leave SLF4J on its NOP logger.
    logging_deps='
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId><version>2.24.3</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId><version>2.24.3</version></dependency>'
  else
    logging_deps='
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-reload4j</artifactId><version>1.7.36</version></dependency>'
  fi
  cat >"$cache/pom.xml" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<!-- Written by tools/kafka.sh: the jars of Apache Kafka $version, for a local test broker. -->
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>qudao.local</groupId>
  <artifactId>kafka-broker-jars</artifactId>
  <version>$version</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$version</version></dependency>$logging_deps
  </dependencies>
  <build>
    <plugins>
      <plugin>
        <groupId>org.apache.maven.plugins</groupId>
        <artifactId>maven-dependency-plugin</artifactId>
        <version>3.8.1</version>
        <configuration>
          <outputDirectory>\${qudao.libs.dir}</outputDirectory>
          <includeScope>runtime</includeScope>
        </configuration>
      </plugin>
    </plugins>
  </build>
</project>
EOF
}

fetch_jars() {
  [ -f "$libs/kafka_2.13-$version.jar" ] && return 0
  command -v mvn >/dev/null || die "mvn not found (tools/setup.sh installs Maven)"
  mkdir -p "$cache"
  exec 8>"$cache/.lock"
  flock 8
  if [ ! -f "$libs/kafka_2.13-$version.jar" ]; then
    log "fetching Apache Kafka $version jars with Maven into $libs"
    write_pom
    local tmp=$cache/libs.partial.$$
    rm -rf "$tmp"
    if ! mvn -q -B -f "$cache/pom.xml" -Dqudao.libs.dir="$tmp" dependency:copy-dependencies >"$cache/mvn.log" 2>&1; then
      rm -rf "$tmp"
      tail -n 30 "$cache/mvn.log" >&2
      die "Maven could not fetch Apache Kafka $version (full output in $cache/mvn.log)"
    fi
    [ -f "$tmp/kafka_2.13-$version.jar" ] || { rm -rf "$tmp"; die "Maven ran but kafka_2.13-$version.jar is missing"; }
    rm -rf "$libs"
    mv "$tmp" "$libs"
    log "$(find "$libs" -name '*.jar' | wc -l) jars in $libs"
  fi
  exec 8>&-
}

# ---- configuration ------------------------------------------------------------------------------
write_config() {
  cat >"$state/server.properties" <<EOF
# Written by tools/kafka.sh on every start: a single-node KRaft test broker (Kafka $version).
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
log.dirs=$state/data

# One replica of everything.
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=8
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1

num.partitions=4
auto.create.topics.enable=true
delete.topic.enable=true
group.initial.rebalance.delay.ms=0

# A 2-core machine.
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
background.threads=4
log.cleaner.threads=1
log.cleaner.dedupe.buffer.size=33554432

# Bounded disk use: per partition at most 1 GiB or 24 h, in 128 MiB segments.
log.retention.hours=24
log.retention.bytes=1073741824
log.segment.bytes=134217728
log.retention.check.interval.ms=60000
EOF

  if [ "$major" -ge 4 ]; then
    cat >"$state/log4j2.properties" <<'EOF'
# Written by tools/kafka.sh: the broker logs to broker.log in its state directory (20 MiB x 3 at most).
status = warn
name = qudao-kafka
appender.file.type = RollingFile
appender.file.name = file
appender.file.fileName = ${sys:kafka.logs.dir}/broker.log
appender.file.filePattern = ${sys:kafka.logs.dir}/broker.log.%i
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
appender.file.policies.type = Policies
appender.file.policies.size.type = SizeBasedTriggeringPolicy
appender.file.policies.size.size = 20MB
appender.file.strategy.type = DefaultRolloverStrategy
appender.file.strategy.max = 2
appender.file.strategy.fileIndex = min
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
logger.statechange.name = state.change.logger
logger.statechange.level = WARN
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.authorizer.name = kafka.authorizer.logger
logger.authorizer.level = WARN
logger.zk.name = org.apache.zookeeper
logger.zk.level = WARN
EOF
  else
    cat >"$state/log4j.properties" <<'EOF'
# Written by tools/kafka.sh: the broker logs to broker.log in its state directory (20 MiB x 3 at most).
log4j.rootLogger=INFO, file
log4j.appender.file=org.apache.log4j.RollingFileAppender
log4j.appender.file.File=${kafka.logs.dir}/broker.log
log4j.appender.file.MaxFileSize=20MB
log4j.appender.file.MaxBackupIndex=2
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.state.change.logger=WARN
log4j.logger.kafka.request.logger=WARN
log4j.logger.kafka.authorizer.logger=WARN
log4j.logger.org.apache.zookeeper=WARN
EOF
  fi
}

java_opts() {
  # shellcheck disable=SC2206  # the heap options are meant to be split into words
  local heap=($heap_opts)
  jopts=("${heap[@]}" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExitOnOutOfMemoryError
         -Djava.awt.headless=true -Dkafka.logs.dir="$state")
  if [ "$major" -ge 4 ]; then
    jopts+=(-Dlog4j2.configurationFile="$state/log4j2.properties")
  else
    jopts+=(-Dlog4j.configuration="file:$state/log4j.properties")
  fi
}

# Formats the KRaft storage unless it already is; refuses a directory another version formatted.
format_storage() {
  if [ -f "$state/data/meta.properties" ]; then
    local was
    was=$(cat "$state/kafka.version" 2>/dev/null || echo unknown)
    [ "$was" = "$version" ] ||
      die "$state was formatted by Kafka $was, not $version; run '$0 stop --wipe${port:+ --port $port}' first"
    return 0
  fi
  local id out
  out=$("$java" -cp "$libs/*" "${jopts[@]}" kafka.tools.StorageTool random-uuid 2>&1) || true
  id=$(printf '%s\n' "$out" | tail -n 1)
  if ! [[ $id =~ ^[A-Za-z0-9_-]{22}$ ]]; then
    printf '%s\n' "$out" >>"$stdout_log"
    show_log_tail
    die "'kafka.tools.StorageTool random-uuid' failed"
  fi
  "$java" -cp "$libs/*" "${jopts[@]}" kafka.tools.StorageTool format -t "$id" -c "$state/server.properties" \
    >>"$stdout_log" 2>&1 || { show_log_tail; die "StorageTool format failed"; }
  echo "$version" >"$state/kafka.version"
  log "formatted KRaft storage in $state/data (cluster id $id)"
}

# ---- commands -----------------------------------------------------------------------------------
cmd_start() {
  local pid
  lock_state
  if pid=$(broker_pid); then
    if started "$pid" && port_open "$port"; then
      echo "$address"
      return 0
    fi
    log "broker pid $pid is still starting; waiting"
  else
    command -v "$java" >/dev/null || die "'$java' not found (tools/setup.sh installs a JDK)"
    port_open "$port" && die "127.0.0.1:$port is already taken by another process (not this broker; see $state)"
    port_open "$cport" && die "controller port 127.0.0.1:$cport is already taken by another process"
    fetch_jars
    touch "$marker"
    rm -f "$pid_file"
    write_config
    java_opts
    [ -f "$broker_log" ] && mv -f "$broker_log" "$state/broker.prev.log"
    rm -f "$broker_log".[0-9]*
    : >"$stdout_log"
    format_storage
    log "starting Kafka $version on $address (state in $state)"
    rm -f "$state/serving"
    (
      cd "$state"
      # The broker outlives this script: it keeps none of its descriptors (our lock, a caller's pipes).
      for fd in /proc/"$BASHPID"/fd/*; do
        fd=${fd##*/}
        if [ "$fd" -gt 2 ]; then eval "exec $fd>&-" 2>/dev/null || true; fi
      done
      exec setsid nohup "$java" -cp "$libs/*" "${jopts[@]}" kafka.Kafka "$state/server.properties" \
        >>"$stdout_log" 2>&1 </dev/null
    ) &
    pid=$!
    echo "$pid" >"$pid_file"
  fi

  local deadline=$((SECONDS + start_timeout))
  while :; do
    if ! kill -0 "$pid" 2>/dev/null || { [ -r "/proc/$pid/stat" ] && [ "$(awk '{print $3}' "/proc/$pid/stat")" = Z ]; }; then
      rm -f "$pid_file"
      show_log_tail
      die "the broker exited while starting (logs: $broker_log, $stdout_log)"
    fi
    if started "$pid" && port_open "$port"; then break; fi
    if [ $SECONDS -ge $deadline ]; then
      show_log_tail
      die "the broker (pid $pid) did not start serving on $address within ${start_timeout}s; it is left running (stop it with '$0 stop --port $port')"
    fi
    sleep 0.2
  done
  log "Kafka $version is up (pid $pid)"
  echo "$address"
}

cmd_stop() {
  local pid
  lock_state
  if pid=$(broker_pid); then
    log "stopping broker pid $pid"
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + stop_timeout))
    while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then
      log "no clean exit after ${stop_timeout}s; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
    fi
    log "stopped (log kept in $broker_log)"
  fi
  rm -f "$pid_file" "$state/serving"
  if [ $wipe -eq 1 ] && [ -d "$state" ]; then
    if [ -f "$marker" ] || [ -z "$(ls -A "$state")" ]; then
      rm -rf "$state"
      log "deleted $state"
    else
      die "$state was not made by this script; not deleting it"
    fi
  fi
}

cmd_status() {
  local pid
  if pid=$(broker_pid); then
    local v
    v=$(cat "$state/kafka.version" 2>/dev/null || echo "?")
    if started "$pid" && port_open "$port"; then
      echo "running: pid $pid, Kafka $v, bootstrap $address, state $state"
      return 0
    fi
    echo "starting: pid $pid, Kafka $v, not yet serving on $address, state $state"
    return 1
  fi
  echo "not running (bootstrap would be $address, state $state)"
  return 1
}

case $cmd in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  bootstrap) echo "$address" ;;
  logs) echo "$broker_log" ;;
esac
