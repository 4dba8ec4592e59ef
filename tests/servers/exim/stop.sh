#!/usr/bin/env bash
# stop.sh DIR -- stop the Exim that start.sh DIR started.  Only the process named by
# DIR/exim/exim.pid is signalled (never by name: other Exims may run on this host).
# Waits at most 5 s for it to exit (SIGKILL then, 1 s more); exit status 1 if it is
# still alive.
set -u
if [ $# -ne 1 ]; then echo "usage: $0 DIR" >&2; exit 2; fi
DIR=$(cd "$1" && pwd -P) || exit 1
PIDFILE="$DIR/exim/exim.pid"

# A process that has exited but was not reaped (PID 1 of some containers does not reap
# orphans) stays a zombie: kill -0 still succeeds, so look at its state instead.
alive() { # PID
  local state
  state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
  [ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}

[ -f "$PIDFILE" ] || exit 0
pid=$(tr -d ' \n' < "$PIDFILE")
case $pid in ''|*[!0-9]*) echo "$0: bad pid file $PIDFILE" >&2; exit 1;; esac

# SIGTERM: the listening daemon exits; the SMTP sessions and deliveries it forked end
# on their own (they are short).
kill -TERM "$pid" 2>/dev/null || true
for _ in $(seq 1 50); do
  alive "$pid" || { rm -f "$PIDFILE"; exit 0; }
  sleep 0.1
done
echo "$0: exim $pid still running after 5 s: SIGKILL" >&2
kill -KILL "$pid" 2>/dev/null || true
for _ in $(seq 1 10); do
  alive "$pid" || { rm -f "$PIDFILE"; exit 1; }
  sleep 0.1
done
echo "$0: exim $pid still running" >&2
exit 1
