#!/bin/bash
set -x
L=/work/runs/bin/lcmae
cd /work/runs
FT=(--threads 1 --epochs 1 --limit-train 10000 --batch 64 --blr 4e-3 --crop-scale 0.35 --mixup 0 --cutmix 0 --randaug off --reprob 0 --drop-path 0.1)
while pgrep -f "loss none --epochs 3" > /dev/null || [ ! -f mae-3ep/checkpoint.safetensors ]; do sleep 10; done
( time $L eval knn --ckpt mae-3ep/checkpoint.safetensors --threads 1 ) > eval-knn-mae.log 2>&1
( time $L eval linear --ckpt mae-3ep/checkpoint.safetensors --feature cls --threads 1 ) > eval-linear-mae.log 2>&1
( time $L eval finetune --ckpt mae-3ep/checkpoint.safetensors "${FT[@]}" ) > eval-finetune-mae.log 2>&1
