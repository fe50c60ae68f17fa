#!/usr/bin/env bash
# Runs a worker command and starts it again when it dies unasked, so one crash does not stop the app: honcho (the
# Procfile) stops every process when one exits, and a Celery worker can die of a broker outage itself (kombu
# ends it with "Unrecoverable error" when Redis drops while it acknowledges a task). The work it held is not
# lost either way (acks_late, the reconciler); this brings the worker back for it.
#
#   scripts/supervise.sh COMMAND [ARGS...]
#
# TERM, INT or QUIT are passed to the command and end the supervision once it has exited; a command that exits
# with status 0 is done. Restarts wait 1 s, doubling to 30 s while the command keeps dying within a minute.
set -u
child=0
stopping=0
forward() {
  stopping=1
  if [ "$child" -ne 0 ]; then kill -s "$1" "$child" 2>/dev/null; fi
}
trap 'forward TERM' TERM
trap 'forward INT' INT
trap 'forward QUIT' QUIT

delay=1
while :; do
  started=$SECONDS
  "$@" &
  child=$!
  # `wait` returns early when a signal is trapped: wait again until the command itself has exited.
  wait "$child"
  status=$?
  while kill -0 "$child" 2>/dev/null; do
    wait "$child"
    status=$?
  done
  child=0
  if [ "$stopping" -eq 1 ] || [ "$status" -eq 0 ]; then
    exit "$status"
  fi
  if [ $((SECONDS - started)) -ge 60 ]; then delay=1; fi
  echo "supervise: $1 exited with status $status; starting it again in ${delay}s" >&2
  sleep "$delay" &
  wait $! 2>/dev/null
  if [ "$stopping" -eq 1 ]; then exit "$status"; fi
  delay=$((delay * 2 > 30 ? 30 : delay * 2))
done
