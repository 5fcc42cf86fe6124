#!/bin/bash
# A longer fine-tune (30k images, 1 epoch = 468 steps) of all three encoders, same settings.
set -x
L=/work/runs/bin/lcmae
cd /work/runs
FT=(--threads 1 --epochs 1 --limit-train 30000 --batch 64 --blr 4e-3 --crop-scale 0.35 --mixup 0 --cutmix 0 --randaug off --reprob 0 --drop-path 0.1)
while pgrep -f "eval_a.sh" > /dev/null; do sleep 10; done
( time $L eval finetune --ckpt lcmae-3ep/checkpoint.safetensors "${FT[@]}" --out lcmae-3ep/eval-finetune-30k.json ) > eval-finetune30k-lcmae.log 2>&1
( time $L eval finetune --ckpt mae-3ep/checkpoint.safetensors "${FT[@]}" --out mae-3ep/eval-finetune-30k.json ) > eval-finetune30k-mae.log 2>&1
( time $L eval finetune --ckpt random "${FT[@]}" --out eval/finetune-30k-random.json ) > eval-finetune30k-random.log 2>&1
