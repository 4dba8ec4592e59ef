#!/usr/bin/env bash
# stop.sh DIR -- stop what start.sh DIR started.  Only the processes named by the pid
# files under DIR are signalled (never by name: other servers may run on this host).
# Waits at most 5 s for them to exit; exit status 1 if one is still alive.
set -u
if [ $# -ne 1 ]; then echo "usage: $0 DIR" >&2; exit 2; fi
DIR=$(cd "$1" && pwd -P) || exit 1

PIDFILES=(
  "$DIR/postfix/spool/pid/master.pid"   # Postfix master (it stops its children)
  "$DIR/dovecot/run/master.pid"         # Dovecot master (idem)
  "$DIR/socks/microsocks.pid"
  "$DIR/socks/microsocks-auth.pid"
)

# A process that has exited but was not reaped (PID 1 of some containers does not reap
# orphans) stays a zombie: kill -0 still succeeds, so look at its state instead.
alive() { # PID
  local state
  state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
  [ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}
pid_of() { # PIDFILE -> pid on stdout, or nothing
  [ -f "$1" ] || return 0
  local p
  p=$(tr -d ' \n' < "$1")
  case $p in ''|*[!0-9]*) return 0;; esac
  echo "$p"
}

# SIGTERM: the Postfix master terminates its children and exits ("postfix stop" does
# the same, plus a one-second polling loop); Dovecot's master likewise.
pids=()
for f in "${PIDFILES[@]}"; do
  p=$(pid_of "$f")
  [ -n "$p" ] || continue
  pids+=("$p")
  kill -TERM "$p" 2>/dev/null || true
done

for _ in $(seq 1 50); do
  left=()
  for p in ${pids[@]+"${pids[@]}"}; do alive "$p" && left+=("$p"); done
  [ ${#left[@]} -eq 0 ] && exit 0
  sleep 0.1
done
echo "$0: still running after 5 s: ${left[*]}" >&2
exit 1
