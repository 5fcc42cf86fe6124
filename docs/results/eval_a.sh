#!/bin/bash
set -x
L=/work/runs/bin/lcmae
cd /work/runs
FT=(--threads 1 --epochs 1 --limit-train 10000 --batch 64 --blr 4e-3 --crop-scale 0.35 --mixup 0 --cutmix 0 --randaug off --reprob 0 --drop-path 0.1)
while pgrep -f "lcmae eval knn --ckpt lcmae-3ep" > /dev/null; do sleep 10; done
( time $L eval linear --ckpt lcmae-3ep/checkpoint.safetensors --feature cls --threads 1 ) > eval-linear-lcmae.log 2>&1
( time $L eval finetune --ckpt lcmae-3ep/checkpoint.safetensors "${FT[@]}" ) > eval-finetune-lcmae.log 2>&1
( time $L eval finetune --ckpt random "${FT[@]}" --out eval/finetune-random.json ) > eval-finetune-random.log 2>&1
