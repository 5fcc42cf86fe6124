#!/bin/bash
# Crash safety of the main job's saves (issue 10): a run that saves after every optimiser step is
# killed with SIGKILL at random moments, again and again; after every kill the next start resumes
# from the saved pair. Passes when every resume succeeds from a step no earlier than the last one
# seen saved before the kill (a save killed between its two renames must be finished, not
# refused), the counters never go backwards, no staging directory outlives a resume, and a final
# unkilled run ends normally.
#
#   sigkill_resume.sh EXE WORKDIR [KILLS]      EXE: lcmae_pretrain (or anything taking its flags)
set -u
EXE=$1
W=$2
KILLS=${3:-8}
OUT=$W/run
rm -rf "$W"
mkdir -p "$W"
fail() { echo "FAIL: $*"; for f in "$W"/log.*; do echo "--- $f"; tail -5 "$f"; done; exit 1; }

# --minutes 5: the schedule never ends on its own here; only the kills (and the final stop) end runs
args=(--data fashion-mnist --batch 8 --save-every 1 --epochs 1 --warmup 0.01 --threads 1 --no-eval --out "$OUT")
last_saved=0
RANDOM=${LCMAE_KILL_SEED:-7}
for ((i = 1; i <= KILLS; i++)); do
  extra=()
  [[ -f $OUT/checkpoint.safetensors || -f $OUT/train_state.safetensors ]] && extra=(--resume "$OUT")
  stdbuf -oL "$EXE" "${args[@]}" "${extra[@]}" --minutes 5 > "$W/log.$i" 2>&1 &
  pid=$!
  # wait until the run has completed a save of its own (a fresh run killed before it leaves nothing
  # to resume from; a resumed run killed before it tests nothing new): its first progress line
  # comes after at least one step, and with --save-every 1 every step saves (periodic saves print
  # no line of their own). Then a random 0-1.9 s, so kills land during steps and saves. Up to 2
  # minutes: a loaded machine reads the data slowly.
  ready="step +[0-9]+/"
  for ((t = 0; t < 1200; t++)); do
    grep -Eq "$ready" "$W/log.$i" 2>/dev/null && break
    kill -0 $pid 2>/dev/null || break
    sleep 0.1
  done
  sleep "$((RANDOM % 20 / 10)).$((RANDOM % 10))"
  kill -0 $pid 2>/dev/null || fail "run $i ended before it was killed (exit: $(wait $pid; echo $?))"
  kill -9 $pid
  wait $pid 2>/dev/null
  if ((${#extra[@]})); then
    grep -q "resumed from .* at step" "$W/log.$i" || fail "run $i did not resume from $OUT"
    step=$(sed -n 's/.*resumed from .* at step \([0-9]*\).*/\1/p' "$W/log.$i" | head -1)
    ((step >= last_saved)) || fail "run $i resumed at step $step, before step $last_saved that was saved earlier"
    echo "kill $i: resumed at step $step"
    last_saved=$step
  else
    echo "kill $i: fresh start"
  fi
  # the highest step a completed save reported before this kill
  s=$(sed -n 's/.*saved .* at step \([0-9]*\).*/\1/p' "$W/log.$i" | tail -1)
  [[ -n $s ]] && ((s > last_saved)) && last_saved=$s
done

# the final run: resumes, and stops on its own after 0.05 minutes with a clean save
"$EXE" "${args[@]}" --resume "$OUT" --minutes 0.05 > "$W/log.final" 2>&1 || fail "the final resume failed"
grep -q "resumed from .* at step" "$W/log.final" || fail "the final run did not resume"
step=$(sed -n 's/.*resumed from .* at step \([0-9]*\).*/\1/p' "$W/log.final" | head -1)
((step >= last_saved)) || fail "the final run resumed at step $step, before step $last_saved"
ls -a "$OUT" | grep -q '^\.save-' && fail "a staging directory was left in $OUT: $(ls -a "$OUT")"
echo "PASS: $KILLS kills, every resume consistent (final resume at step $step)"
