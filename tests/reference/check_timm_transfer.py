#!/usr/bin/env python3
"""Checks `lcmae export` / `lcmae import` against timm (by hand; CI does not run it: it needs torch).

    python3 tests/reference/check_timm_transfer.py BUILD/tools/lcmae CHECKPOINT.safetensors

1. `lcmae export --ckpt CHECKPOINT` -> timm's VisionTransformer(img_size=28, patch_size=4,
   in_chans=1, embed_dim=192, depth=6, num_heads=3) loads it with strict=True (the classifier head
   is not exported: num_classes=0);
2. a timm VisionTransformer at 32 px, 3 channels (a learned pos_embed of 8x8, random weights) is
   saved with safetensors and imported with `lcmae import` into the main job's 28 px / 1 channel
   geometry; the imported tensors equal what timm itself makes of that state dict when it builds the
   28 px / 1-channel model (checkpoint_filter_fn: resample_abs_pos_embed; adapt_input_conv for
   the channels): pos_embed within 1e-6, the rest exact.
Prints what it compared and exits non-zero on a mismatch.
"""
import os
import subprocess
import sys
import tempfile

import torch
from safetensors.torch import load_file, save_file
from timm.layers import resample_abs_pos_embed
from timm.models import adapt_input_conv
from timm.models.vision_transformer import VisionTransformer

GEOM = dict(patch_size=4, embed_dim=192, depth=6, num_heads=3, num_classes=0)


def run(*args):
    r = subprocess.run(args, capture_output=True, text=True)
    print(r.stdout + r.stderr, end="")
    if r.returncode != 0:
        sys.exit(f"{args[0]} failed with {r.returncode}")


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    exe, ckpt = sys.argv[1], sys.argv[2]
    tmp = tempfile.mkdtemp()
    # 1. export -> timm strict load
    out = os.path.join(tmp, "exported.safetensors")
    run(exe, "export", "--ckpt", ckpt, "--timm", out)
    vit = VisionTransformer(img_size=28, in_chans=1, **GEOM)
    missing, unexpected = vit.load_state_dict(load_file(out), strict=True)
    print(f"1. timm loaded {out} with strict=True (missing {missing}, unexpected {unexpected})")

    # 2. a 32 px RGB timm model into the 28 px gray geometry
    torch.manual_seed(0)
    src = VisionTransformer(img_size=32, in_chans=3, **GEOM)
    with torch.no_grad():
        src.pos_embed.normal_(0, 0.02)  # a learned-looking table
    sd = {k: v.contiguous() for k, v in src.state_dict().items()}
    timm_file = os.path.join(tmp, "timm32rgb.safetensors")
    save_file(sd, timm_file)
    imported = os.path.join(tmp, "imported.safetensors")
    run(exe, "import", "--timm", timm_file, "--out", imported)
    got = load_file(imported)
    want = dict(sd)
    want["pos_embed"] = resample_abs_pos_embed(sd["pos_embed"], [7, 7], num_prefix_tokens=1)
    want["patch_embed.proj.weight"] = adapt_input_conv(1, sd["patch_embed.proj.weight"])
    bad = []
    for k, v in want.items():
        g = got[k]
        if g.shape != v.shape:
            bad.append(f"{k}: shape {tuple(g.shape)} vs {tuple(v.shape)}")
            continue
        err = (g.double() - v.double()).abs().max().item()
        tol = 1e-6 if k == "pos_embed" else 0.0
        print(f"2. {k:28s} max |lcmae - timm| = {err:.3g}")
        if err > tol:
            bad.append(f"{k}: {err}")
    if set(got) != set(want):
        bad.append(f"names differ: {sorted(set(got) ^ set(want))}")
    if bad:
        sys.exit("mismatches:\n  " + "\n  ".join(bad))
    print("all equal")


if __name__ == "__main__":
    main()
