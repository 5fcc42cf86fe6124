#!/usr/bin/env bash
# tests/dist/kill_rank.sh MODE EXE [LIMIT_S] - a rank that dies or hangs mid-run ends the whole
# MPI job, within LIMIT_S seconds, with a message that says what happened.
#   MODE kill: rank 1 gets SIGKILL. mpirun notices its child's death and ends the job; its message
#              names the rank ("process rank 1 ... exited on signal 9").
#   MODE stop: rank 1 gets SIGSTOP (alive but silent: a hang mpirun cannot see). Rank 0's next
#              collective passes LCMAE_DIST_TIMEOUT (3 s here) and MPI_Abort ends every rank; its
#              message names the reporting rank and the collective.
# mpirun's flags for CI are set here, not globally: --oversubscribe (2 ranks on any number of
# cores) and, only when run as root (containers), --allow-run-as-root.
set -u
mode=$1 exe=$2 limit=${3:-30}
mpirun_bin=${MPIEXEC:-mpirun}
flags=(-np 2 --oversubscribe)
[[ $(id -u) -eq 0 ]] && flags+=(--allow-run-as-root)
out=$(mktemp)
trap 'rm -f "$out"' EXIT
LCMAE_DIST_TIMEOUT=3 "$mpirun_bin" "${flags[@]}" "$exe" >"$out" 2>&1 &
mpid=$!
victim=""
for _ in $(seq 600); do  # up to 60 s for rank 1 to have trained 3 micro-batches
  victim=$(sed -n 's/^rank 1 pid \([0-9]*\) micro \([3-9]\|[1-9][0-9]\+\)$/\1/p' "$out" | head -n1)
  [[ -n $victim ]] && break
  kill -0 "$mpid" 2>/dev/null || break
  sleep 0.1
done
if [[ -z $victim ]]; then
  echo "FAIL: rank 1 never reported 3 micro-batches; output:"; cat "$out"; kill -9 "$mpid" 2>/dev/null; exit 1
fi
case $mode in
  kill) kill -KILL "$victim" ;;
  stop) kill -STOP "$victim" ;;
  *) echo "unknown mode $mode"; exit 2 ;;
esac
t0=$(date +%s%N)
ended=0
for _ in $(seq $((limit * 10))); do
  if ! kill -0 "$mpid" 2>/dev/null; then ended=1; break; fi
  sleep 0.1
done
elapsed_ms=$((($(date +%s%N) - t0) / 1000000))
elapsed="$((elapsed_ms / 1000)).$(printf %03d $((elapsed_ms % 1000)))"
rc=0
if ((ended)); then wait "$mpid"; rc=$?; fi
# leave nothing behind: continue and kill the victim, and mpirun if it still runs
kill -CONT "$victim" 2>/dev/null; kill -KILL "$victim" 2>/dev/null; kill -KILL "$mpid" 2>/dev/null
echo "--- job output (tail) ---"; tail -n 25 "$out"; echo "---"
if ((!ended)); then echo "FAIL: the job still ran ${limit} s after rank 1 was ${mode}ped"; exit 1; fi
echo "the job ended ${elapsed} s after rank 1 was sent SIG${mode^^} (limit ${limit} s), mpirun exit status ${rc}"
if ((rc == 0)); then echo "FAIL: mpirun exited with status 0"; exit 1; fi
if [[ $mode == kill ]]; then
  grep -Eq "rank 1 .*(exited on signal 9|Killed)|process rank 1" "$out" || { echo "FAIL: no message naming rank 1"; exit 1; }
else
  grep -Eq "lcmae: rank 0 of 2: .* did not complete within 3 s" "$out" || { echo "FAIL: no timeout message from rank 0"; exit 1; }
fi
echo "PASS"
