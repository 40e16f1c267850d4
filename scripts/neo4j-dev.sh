#!/usr/bin/env bash
# A local Neo4j 5.26 Community server for development and the Neo4j tests, without Docker:
# the server jars come from Maven Central into a cache folder outside the repository.
#
#   scripts/neo4j-dev.sh start    resolve the jars (first time only), write the config, start in the
#                                 background, wait for Bolt, set the password on first start
#   scripts/neo4j-dev.sh stop     stop the server this script started (SIGTERM, SIGKILL after 30 s)
#   scripts/neo4j-dev.sh status   exit 0 when running, 3 when not
#
# Environment (defaults in brackets):
#   KGBUILD_NEO4J_HOME  server home: jars, config, data, logs  [~/.cache/kgbuild/neo4j-5.26.30]
#   NEO4J_BOLT_PORT [7687]  NEO4J_HTTP_PORT [7474]  NEO4J_HEAP [1g]  NEO4J_PAGECACHE [512m]
#   NEO4J_PASSWORD      password of the neo4j user  [the dev password]
#   NEO4J_START_TIMEOUT seconds to wait for Bolt  [120]
#   KGBUILD_PYTHON      a Python with the neo4j driver  [./.venv/bin/python]
# The server listens on 127.0.0.1 only; Neo4j Browser is at http://127.0.0.1:$NEO4J_HTTP_PORT/browser/.
set -euo pipefail

NEO4J_VERSION=5.26.30
BROWSER_VERSION=5.24.0
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
NEO4J_HOME_DIR="${KGBUILD_NEO4J_HOME:-$HOME/.cache/kgbuild/neo4j-$NEO4J_VERSION}"
BOLT_PORT="${NEO4J_BOLT_PORT:-7687}"
HTTP_PORT="${NEO4J_HTTP_PORT:-7474}"
HEAP="${NEO4J_HEAP:-1g}"
PAGECACHE="${NEO4J_PAGECACHE:-512m}"
START_TIMEOUT="${NEO4J_START_TIMEOUT:-120}"
PYTHON="${KGBUILD_PYTHON:-$REPO/.venv/bin/python}"
export NEO4J_PASSWORD="${NEO4J_PASSWORD:-kgbuild-dev-password}"

PIDFILE="$NEO4J_HOME_DIR/run/neo4j-dev.pid"
CONSOLE_LOG="$NEO4J_HOME_DIR/logs/console.log"
LIB="$NEO4J_HOME_DIR/lib"

say() { echo "neo4j-dev: $*" >&2; }
die() { echo "neo4j-dev: error: $*" >&2; exit 1; }

usage() {
  echo "usage: $(basename "$0") start|stop|status" >&2
  exit 2
}

require_java() {
  command -v java >/dev/null 2>&1 || die "java not found: install a Java 17 or 21 runtime (Debian: apt-get install openjdk-17-jre-headless)"
  local version major
  version="$(java -version 2>&1 | awk -F'"' '/version/ {print $2; exit}')"
  major="${version%%.*}"
  [[ "$major" =~ ^[0-9]+$ ]] && [ "$major" -ge 17 ] || die "java ${version:-of unknown version} is too old: Neo4j $NEO4J_VERSION needs Java 17 or 21"
}

require_python() {
  [ -x "$PYTHON" ] || die "no Python at $PYTHON: run scripts/setup.sh, or set KGBUILD_PYTHON"
  "$PYTHON" -c "import neo4j" 2>/dev/null || die "$PYTHON has no neo4j driver: run scripts/setup.sh (or uv pip install neo4j)"
}

check_settings() {
  [[ "$BOLT_PORT" =~ ^[0-9]+$ ]] || die "NEO4J_BOLT_PORT must be a port number, got '$BOLT_PORT'"
  [[ "$HTTP_PORT" =~ ^[0-9]+$ ]] || die "NEO4J_HTTP_PORT must be a port number, got '$HTTP_PORT'"
  [[ "$HEAP" =~ ^[0-9]+[kKmMgG]$ ]] || die "NEO4J_HEAP must look like 1g or 512m, got '$HEAP'"
  [[ "$PAGECACHE" =~ ^[0-9]+[kKmMgG]$ ]] || die "NEO4J_PAGECACHE must look like 512m, got '$PAGECACHE'"
  [[ "$START_TIMEOUT" =~ ^[0-9]+$ ]] || die "NEO4J_START_TIMEOUT must be a number of seconds, got '$START_TIMEOUT'"
  local home repo
  home="$(realpath -m "$NEO4J_HOME_DIR")"
  repo="$(realpath -m "$REPO")"
  case "$home/" in
    "$repo"/*) die "KGBUILD_NEO4J_HOME ($home) is inside the repository; choose a folder outside it" ;;
  esac
}

# The pid of the server this script started, if that process is still the server; empty otherwise.
running_pid() {
  [ -f "$PIDFILE" ] || return 0
  local pid
  pid="$(tr -dc '0-9' <"$PIDFILE")"
  [ -n "$pid" ] || return 0
  [ -r "/proc/$pid/cmdline" ] || return 0
  # only our own server: a recycled pid belongs to some other program
  local cmdline
  cmdline="$(tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null || true)"
  if grep -qxF "org.neo4j.server.CommunityEntryPoint" <<<"$cmdline" && grep -qxF -- "--home-dir=$NEO4J_HOME_DIR" <<<"$cmdline"; then
    echo "$pid"
  fi
}

port_in_use() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

resolve_jars() {
  if [ -f "$LIB/.complete" ] && compgen -G "$LIB/*.jar" >/dev/null; then
    say "using the cached server jars in $LIB"
    return 0
  fi
  command -v mvn >/dev/null 2>&1 || die "mvn not found: install Maven (Debian: apt-get install maven) to fetch the Neo4j jars once"
  local build="$NEO4J_HOME_DIR/maven"
  mkdir -p "$build"
  cat >"$build/pom.xml" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<!-- Written by kgbuild scripts/neo4j-dev.sh: only used to download the server jars. -->
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>kgbuild.dev</groupId>
  <artifactId>neo4j-dev-server</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.neo4j.app</groupId><artifactId>neo4j-server</artifactId><version>$NEO4J_VERSION</version></dependency>
    <dependency><groupId>org.neo4j</groupId><artifactId>neo4j</artifactId><version>$NEO4J_VERSION</version></dependency>
    <dependency><groupId>org.neo4j.client</groupId><artifactId>neo4j-browser</artifactId><version>$BROWSER_VERSION</version></dependency>
  </dependencies>
</project>
EOF
  say "downloading Neo4j $NEO4J_VERSION and Browser $BROWSER_VERSION from Maven Central into $LIB (about a minute, once)"
  rm -rf "$LIB.partial"
  if ! mvn -q -B -f "$build/pom.xml" dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$LIB.partial" \
    >"$build/mvn.log" 2>&1; then
    tail -n 20 "$build/mvn.log" >&2
    die "Maven could not fetch the Neo4j jars (full log: $build/mvn.log)"
  fi
  compgen -G "$LIB.partial/neo4j-server-*.jar" >/dev/null || die "Maven finished but neo4j-server-$NEO4J_VERSION.jar is missing (log: $build/mvn.log)"
  rm -rf "$LIB"
  mv "$LIB.partial" "$LIB"
  touch "$LIB/.complete"
  say "$(find "$LIB" -name '*.jar' | wc -l) jars in $LIB"
}

write_config() {
  mkdir -p "$NEO4J_HOME_DIR"/{conf,data,logs,plugins,run,import}
  cat >"$NEO4J_HOME_DIR/conf/neo4j.conf" <<EOF
# Written by kgbuild scripts/neo4j-dev.sh on every start; edit the environment, not this file.
server.default_listen_address=127.0.0.1
server.default_advertised_address=127.0.0.1
server.bolt.enabled=true
server.bolt.listen_address=127.0.0.1:$BOLT_PORT
server.bolt.advertised_address=127.0.0.1:$BOLT_PORT
server.http.enabled=true
server.http.listen_address=127.0.0.1:$HTTP_PORT
server.http.advertised_address=127.0.0.1:$HTTP_PORT
server.https.enabled=false
server.directories.data=$NEO4J_HOME_DIR/data
server.directories.logs=$NEO4J_HOME_DIR/logs
server.directories.plugins=$NEO4J_HOME_DIR/plugins
server.directories.run=$NEO4J_HOME_DIR/run
server.directories.import=$NEO4J_HOME_DIR/import
server.memory.heap.initial_size=$HEAP
server.memory.heap.max_size=$HEAP
server.memory.pagecache.size=$PAGECACHE
# a development and test server: keep 500 MiB of transaction logs, not Neo4j's default of 2 days (17 GB here)
db.tx_log.rotation.retention_policy=500M size
dbms.usage_report.enabled=false
dbms.security.auth_enabled=true
EOF
}

show_log_tail() {
  local f
  for f in "$CONSOLE_LOG" "$NEO4J_HOME_DIR/logs/neo4j.log"; do
    if [ -s "$f" ]; then
      echo "---- last lines of $f ----" >&2
      tail -n 25 "$f" >&2
    fi
  done
}

stop_pid() {
  local pid="$1" waited=0
  kill -TERM "$pid" 2>/dev/null || true
  while kill -0 "$pid" 2>/dev/null; do
    if [ "$waited" -ge 30 ]; then
      say "still running after 30 s: sending SIGKILL to pid $pid"
      kill -KILL "$pid" 2>/dev/null || true
      sleep 1
      break
    fi
    sleep 1
    waited=$((waited + 1))
  done
  rm -f "$PIDFILE"
}

cmd_start() {
  check_settings
  require_java
  require_python
  mkdir -p "$NEO4J_HOME_DIR/run"
  exec 9>"$NEO4J_HOME_DIR/run/neo4j-dev.lock"
  flock -w 300 9 || die "another neo4j-dev.sh holds $NEO4J_HOME_DIR/run/neo4j-dev.lock"

  local pid
  pid="$(running_pid)"
  if [ -n "$pid" ]; then
    say "already running (pid $pid): bolt://127.0.0.1:$BOLT_PORT, nothing to do"
    return 0
  fi
  rm -f "$PIDFILE"
  port_in_use "$BOLT_PORT" && die "port $BOLT_PORT is taken by another program (not a server this script started); set NEO4J_BOLT_PORT"
  port_in_use "$HTTP_PORT" && die "port $HTTP_PORT is taken by another program; set NEO4J_HTTP_PORT"

  local t0=$SECONDS
  resolve_jars
  write_config
  : >"$CONSOLE_LOG"
  say "starting Neo4j $NEO4J_VERSION (heap $HEAP) in $NEO4J_HOME_DIR"
  # setsid: the server outlives this shell and its process group; the inner shell writes its own
  # pid and then becomes java (exec), so the pid file names the server itself.
  setsid -f bash -c 'echo $$ >"$0"; exec "$@"' "$PIDFILE" \
    nohup java -Xms"$HEAP" -Xmx"$HEAP" -XX:+UseG1GC -XX:+ExitOnOutOfMemoryError -XX:-OmitStackTraceInFastThrow \
    -Dfile.encoding=UTF-8 -Dio.netty.tryReflectionSetAccessible=true -Dlog4j2.disable.jmx=true \
    --add-opens=java.base/java.nio=ALL-UNNAMED --add-opens=java.base/java.io=ALL-UNNAMED \
    --add-opens=java.base/sun.nio.ch=ALL-UNNAMED --add-opens=java.base/java.lang=ALL-UNNAMED \
    -cp "$LIB/*" org.neo4j.server.CommunityEntryPoint \
    --home-dir="$NEO4J_HOME_DIR" --config-dir="$NEO4J_HOME_DIR/conf" \
    </dev/null >>"$CONSOLE_LOG" 2>&1 9>&-
  local i
  for i in $(seq 50); do
    [ -s "$PIDFILE" ] && break
    sleep 0.1
  done
  pid="$(tr -dc '0-9' <"$PIDFILE" 2>/dev/null || true)"
  [ -n "$pid" ] || die "the server process did not start (log: $CONSOLE_LOG)"
  say "pid $pid; waiting up to ${START_TIMEOUT}s for Bolt on 127.0.0.1:$BOLT_PORT"
  if ! "$PYTHON" "$REPO/scripts/neo4j_dev.py" wait --uri "bolt://127.0.0.1:$BOLT_PORT" --pid "$pid" --timeout "$START_TIMEOUT"; then
    show_log_tail
    if kill -0 "$pid" 2>/dev/null; then
      say "stopping the server that did not come up (pid $pid)"
      stop_pid "$pid"
    fi
    rm -f "$PIDFILE"
    die "Neo4j did not come up; logs are in $NEO4J_HOME_DIR/logs"
  fi
  say "ready in $((SECONDS - t0))s: bolt://127.0.0.1:$BOLT_PORT (user neo4j), Browser http://127.0.0.1:$HTTP_PORT/browser/"
}

cmd_stop() {
  local pid
  pid="$(running_pid)"
  if [ -z "$pid" ]; then
    rm -f "$PIDFILE"
    say "not running"
    return 0
  fi
  say "stopping pid $pid"
  stop_pid "$pid"
  say "stopped"
}

cmd_status() {
  local pid
  pid="$(running_pid)"
  if [ -z "$pid" ]; then
    echo "neo4j-dev: not running ($NEO4J_HOME_DIR)"
    return 3
  fi
  if port_in_use "$BOLT_PORT"; then
    echo "neo4j-dev: running (pid $pid): bolt://127.0.0.1:$BOLT_PORT, http://127.0.0.1:$HTTP_PORT/browser/"
  else
    echo "neo4j-dev: running (pid $pid), Bolt not answering on 127.0.0.1:$BOLT_PORT yet"
  fi
}

[ $# -eq 1 ] || usage
case "$1" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  *) usage ;;
esac
