#!/bin/bash
# MAE vs LC-MAE on Fashion-MNIST, equal epochs (3), same seed and schedule.
set -x
B=/work/runs/bin
cd /work/runs
lscpu > lscpu.txt
( time $B/lcmae_pretrain --data fashion-mnist --loss cosine --epochs 3 --warmup 0.15 --minutes 600 --seed 0 --save-every 1000 --out /work/runs/lcmae-3ep ) > lcmae-3ep.log 2>&1
( time $B/lcmae_pretrain --data fashion-mnist --loss none --epochs 3 --warmup 0.15 --minutes 600 --seed 0 --save-every 1000 --out /work/runs/mae-3ep ) > mae-3ep.log 2>&1
