#!/usr/bin/env bash
# tools/check_pretrain_mpi.sh EXE WORK - `lcmae pretrain` under mpirun (issue 11), end to end on
# 256 Fashion-MNIST images: 2 ranks train and save (rank 0 alone prints and writes), 1 process
# resumes that run at the same global batch, and 2 ranks resume a 1-process run; Ctrl-C to mpirun
# saves, and the saved run resumes.
# mpirun's CI flags are set here: --oversubscribe, and --allow-run-as-root only when root.
set -euo pipefail
exe=$1 work=$2
flags=(-np 2 --oversubscribe)
[[ $(id -u) -eq 0 ]] && flags+=(--allow-run-as-root)
mpirun_bin=${MPIEXEC:-mpirun}
rm -rf "$work" && mkdir -p "$work"
common=(--limit 256 --no-eval --threads 1 --save-every 2 --log-every 1)
fail() { echo "FAIL: $*"; exit 1; }

echo "== 2 ranks x batch 8, 4 steps"
"$mpirun_bin" "${flags[@]}" "$exe" pretrain "${common[@]}" --batch 8 --steps 4 --out "$work/two" >"$work/two.log" 2>&1 ||
  { cat "$work/two.log"; fail "2-rank run exited with $?"; }
cat "$work/two.log"
grep -q "2 ranks (mpi), --batch 8 per rank: global batch 16" "$work/two.log" || fail "no data-parallel banner"
[[ $(grep -c "^saved .*at step 4" "$work/two.log") -eq 1 ]] || fail "the final save line is not printed exactly once"
[[ -f $work/two/checkpoint.safetensors && -f $work/two/train_state.safetensors ]] || fail "no checkpoint"
[[ $(wc -l <"$work/two/metrics.jsonl") -ge 1 ]] || fail "no metrics"

echo "== 1 process x batch 16 resumes it to step 6"
cp -r "$work/two" "$work/two-then-one"
"$exe" pretrain "${common[@]}" --batch 16 --steps 6 --resume "$work/two-then-one" >"$work/one.log" 2>&1 ||
  { cat "$work/one.log"; fail "1-process resume exited with $?"; }
grep -q "resumed from .* at step 4" "$work/one.log" || { cat "$work/one.log"; fail "no resume line"; }
grep -q "^saved .*at step 6" "$work/one.log" || { cat "$work/one.log"; fail "did not reach step 6"; }

echo "== 1 process x batch 16, 2 steps; 2 ranks x batch 8 resume it to step 4"
"$exe" pretrain "${common[@]}" --batch 16 --steps 2 --out "$work/one-then-two" >"$work/first.log" 2>&1 ||
  { cat "$work/first.log"; fail "1-process run exited with $?"; }
"$mpirun_bin" "${flags[@]}" "$exe" pretrain "${common[@]}" --batch 8 --steps 4 --resume "$work/one-then-two" >"$work/second.log" 2>&1 ||
  { cat "$work/second.log"; fail "2-rank resume exited with $?"; }
[[ $(grep -c "resumed from .* at step 2" "$work/second.log") -eq 1 ]] || { cat "$work/second.log"; fail "resume line not printed exactly once"; }
grep -q "^saved .*at step 4" "$work/second.log" || { cat "$work/second.log"; fail "did not reach step 4"; }

echo "== a different global batch is refused (the run would not continue the same training)"
if "$exe" pretrain "${common[@]}" --batch 8 --steps 6 --resume "$work/two" >"$work/refused.log" 2>&1; then
  cat "$work/refused.log"; fail "resuming a global-batch-16 run at batch 8 was accepted"
fi
grep -q "batch 16 -> 8" "$work/refused.log" || { cat "$work/refused.log"; fail "the refusal does not name the batch"; }
echo "== Ctrl-C to mpirun: every rank stops at the same step, rank 0 saves, 1 process resumes it"
# OpenMPI's mpirun answers SIGINT by sending the ranks SIGTERM, then SIGKILL a few seconds later
# (mpirun(1), "Signal Propagation"); our handler treats SIGTERM as a stop request that the ranks
# agree on at the next step (cmd_pretrain.cpp), and this model saves well within that time.
# mpirun's own exit status after a signal is not 0, so only the ranks' output counts.
"$mpirun_bin" "${flags[@]}" "$exe" pretrain --limit 4096 --no-eval --threads 1 --save-every 0 --batch 8 \
  --out "$work/stopped" >"$work/stopped.log" 2>&1 &
run=$!
for _ in $(seq 1 600); do  # up to 60 s for the first progress line
  grep -Eq "step +[0-9]+/" "$work/stopped.log" 2>/dev/null && break
  sleep 0.1
done
sleep 1
kill -INT "$run"
wait "$run" || true
tr '\r' '\n' <"$work/stopped.log" | grep -v "^step" || true
grep -q "stop requested: saving and exiting" "$work/stopped.log" || fail "no stop message after Ctrl-C"
step=$(sed -n 's/^saved .*train_state.safetensors at step \([0-9]*\)$/\1/p' "$work/stopped.log" | tr -d '\r')
[[ -n $step && $step -gt 0 ]] || fail "no save line after Ctrl-C"
"$exe" pretrain --limit 4096 --no-eval --threads 1 --save-every 0 --batch 16 --minutes 0.01 \
  --resume "$work/stopped" >"$work/after-stop.log" 2>&1 || { cat "$work/after-stop.log"; fail "resume after Ctrl-C exited with $?"; }
grep -q "resumed from .* at step $step " "$work/after-stop.log" || { cat "$work/after-stop.log"; fail "did not resume at step $step"; }
echo PASS
