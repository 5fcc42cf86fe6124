#!/bin/bash
# Continuation (same schedule; 1 thread because 2 OpenMP threads stall behind the helpers' compilers
# on the 2 shared cores: 25 images/s vs 105 quiet).
set -x
B=/work/runs/bin
cd /work/runs
( time $B/lcmae_pretrain --data fashion-mnist --loss cosine --epochs 3 --warmup 0.15 --minutes 600 --seed 0 --save-every 1000 --threads 1 --out /work/runs/lcmae-3ep --resume /work/runs/lcmae-3ep ) >> lcmae-3ep.log 2>&1
( time $B/lcmae_pretrain --data fashion-mnist --loss none --epochs 3 --warmup 0.15 --minutes 600 --seed 0 --save-every 1000 --threads 1 --out /work/runs/mae-3ep ) > mae-3ep.log 2>&1
