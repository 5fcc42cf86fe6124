#!/usr/bin/env python3
"""Fixture for the position-embedding resampling of `lcmae import` (tests/io/test_timm_import.cpp).

Writes fixtures/pos_embed_resample.safetensors: a random float32 table `pos` of shape
(1, 1 + 7*7, 8) (seed 0; row 0 is the CLS row) and, for each target grid, `out_<H>x<W>` =
timm.layers.resample_abs_pos_embed(pos, [H, W]) with timm's defaults (bicubic, antialias=True,
num_prefix_tokens=1), the call timm's checkpoint_filter_fn makes when a ViT's grid differs.
Upsampling (7 -> 10, 7 -> 14), downsampling (7 -> 4, 7 -> 3) and a mixed case (7 -> 5 x 9) cover
both branches of PyTorch's antialiased kernel (the filter is widened only when downsampling).

    python3 tests/reference/make_pos_embed_fixture.py     # rewrites the fixture (torch, timm)

Generated with torch 2.15.0, timm 1.0.31 on one CPU thread. CI only reads the file.
"""
import os
import sys

import torch
import timm
from timm.layers import resample_abs_pos_embed

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_fixtures import OUT_DIR, save  # noqa: E402  (the deterministic safetensors writer)

OLD, WIDTH = 7, 8
TARGETS = [(10, 10), (14, 14), (4, 4), (3, 3), (5, 9)]


def main():
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    pos = torch.randn(1, 1 + OLD * OLD, WIDTH, generator=g, dtype=torch.float32)
    tensors = {"pos": pos}
    for h, w in TARGETS:
        tensors[f"out_{h}x{w}"] = resample_abs_pos_embed(pos, [h, w], num_prefix_tokens=1)
    md = {"old_grid": str(OLD), "width": str(WIDTH), "targets": ",".join(f"{h}x{w}" for h, w in TARGETS),
          "torch": torch.__version__, "timm": timm.__version__}
    path = os.path.join(OUT_DIR, "pos_embed_resample.safetensors")
    save(path, tensors, md)
    print("wrote", path)


if __name__ == "__main__":
    main()
