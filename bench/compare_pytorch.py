#!/usr/bin/env python3
"""The bench_train_step workload in PyTorch, for a side-by-side number on the same machine.

One full training step on the Tiny 32 px preset, batch 64 per view, float32, CPU:
  LC-MAE (Symmetric views): online encoder on both masked views (one 2B pass over 16 + cls
  tokens, as lcmae does), MAE decoder (128 wide, 4 blocks, 4 heads) + norm-pix MSE on view 1,
  target encoder on both full views (2B x 65 tokens, eval, no grad), projector (2 layers, BN)
  and predictor (2 layers, BN) per view, target projector, symmetric cosine loss
  (L = L_MIM + 0.25 L_GG), backward, AdamW (weight-decay groups), EMA of the target (params and
  BN buffers).
  MAE: encoder on one masked view, decoder, loss, backward, AdamW.
Modules are timm's Block (qkv bias, exact GELU, LN eps 1e-6), as in tests/reference/make_fixtures.py.
The fastest of torch.set_num_threads(1) and (2) is reported.

  python3 bench/compare_pytorch.py                       # PyTorch only
  python3 bench/compare_pytorch.py --with-cpp build-bench/bench/bench_train_step
                                                         # also runs ours, prints both + ratio
  python3 bench/compare_pytorch.py --with-cpp build-bench/bench/bench_train_step --bf16
                                                         # and ours in --precision=bf16
torch and timm are a developer tool dependency here (not CI).
"""

import argparse
import copy
import json
import os
import subprocess
import sys
import time
from functools import partial

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.models.vision_transformer import Block

IMG, PATCH, CH = 32, 4, 3
GRID = IMG // PATCH
L = GRID * GRID                    # 64 tokens
PDIM = PATCH * PATCH * CH          # 48
D, DEPTH, HEADS = 192, 12, 3
DEC_D, DEC_DEPTH, DEC_HEADS = 128, 4, 4
HID = 4096
B = 64
KEEP = int(L * 0.25)               # 16
ALPHA = 0.25


def block(dim, heads):
    return Block(dim, heads, mlp_ratio=4.0, qkv_bias=True, norm_layer=partial(nn.LayerNorm, eps=1e-6))


def mlp_head(depth=2):
    # depth 2: Linear(D,H) -> BN(H) -> ReLU -> Linear(H,D), bias-free
    return nn.Sequential(nn.Linear(D, HID, bias=False), nn.BatchNorm1d(HID), nn.ReLU(), nn.Linear(HID, D, bias=False))


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.cls_token = nn.Parameter(torch.randn(1, 1, D) * 0.02)
        self.patch_embed = nn.Conv2d(CH, D, PATCH, PATCH)
        self.register_buffer("pos", torch.randn(1, 1 + L, D) * 0.02)
        self.blocks = nn.ModuleList([block(D, HEADS) for _ in range(DEPTH)])
        self.norm = nn.LayerNorm(D, eps=1e-6)

    def forward(self, x, keep=None):
        x = self.patch_embed(x).flatten(2).transpose(1, 2) + self.pos[:, 1:]
        if keep is not None:
            x = torch.gather(x, 1, keep.unsqueeze(-1).expand(-1, -1, D))
        x = torch.cat([(self.cls_token + self.pos[:, :1]).expand(x.shape[0], -1, -1), x], 1)
        for b in self.blocks:
            x = b(x)
        return self.norm(x)


class Decoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Linear(D, DEC_D)
        self.mask_token = nn.Parameter(torch.randn(1, 1, DEC_D) * 0.02)
        self.register_buffer("pos", torch.randn(1, 1 + L, DEC_D) * 0.02)
        self.blocks = nn.ModuleList([block(DEC_D, DEC_HEADS) for _ in range(DEC_DEPTH)])
        self.norm = nn.LayerNorm(DEC_D, eps=1e-6)
        self.pred = nn.Linear(DEC_D, PDIM)

    def forward(self, lat, ids_restore):
        x = self.embed(lat)
        x_ = torch.cat([x[:, 1:], self.mask_token.expand(x.shape[0], L - KEEP, -1)], 1)
        x_ = torch.gather(x_, 1, ids_restore.unsqueeze(-1).expand(-1, -1, DEC_D))
        x = torch.cat([x[:, :1], x_], 1) + self.pos
        for b in self.blocks:
            x = b(x)
        return self.pred(self.norm(x))[:, 1:]


def patchify(imgs):
    x = imgs.reshape(imgs.shape[0], CH, GRID, PATCH, GRID, PATCH).permute(0, 2, 4, 3, 5, 1)
    return x.reshape(imgs.shape[0], L, PDIM)


def mae_loss(imgs, pred, mask):
    t = patchify(imgs)
    t = (t - t.mean(-1, keepdim=True)) / (t.var(-1, keepdim=True, unbiased=True) + 1e-6) ** 0.5
    return ((((pred - t) ** 2).mean(-1)) * mask).sum() / mask.sum()


def cosine(q, t):
    return (2 - 2 * (F.normalize(q, dim=-1) * F.normalize(t, dim=-1)).sum(-1)).mean()


def adamw(params):
    named = list(params)
    dec = [p for n, p in named if p.ndim >= 2 and not n.endswith(".bias")]
    nodec = [p for n, p in named if not (p.ndim >= 2 and not n.endswith(".bias"))]
    return torch.optim.AdamW([{"params": dec, "weight_decay": 0.05}, {"params": nodec, "weight_decay": 0.0}],
                             lr=1.5e-4, betas=(0.9, 0.95))


class Trainer:
    def __init__(self, guided):
        self.guided = guided
        self.online = nn.ModuleDict({"enc": Encoder(), "dec": Decoder()})
        if guided:
            self.online["head"] = mlp_head()
            self.online["predictor"] = mlp_head()
            self.target = nn.ModuleDict({"enc": copy.deepcopy(self.online["enc"]),
                                         "head": copy.deepcopy(self.online["head"])}).eval()
            for p in self.target.parameters():
                p.requires_grad_(False)
            on = dict(self.online.named_parameters())
            on.update(dict(self.online.named_buffers()))
            tgt = list(self.target.named_parameters()) + [(n, b) for n, b in self.target.named_buffers()
                                                           if b.dtype.is_floating_point]
            self.ema_pairs = ([t for _, t in tgt], [on[n] for n, _ in tgt])
        self.opt = adamw(self.online.named_parameters())
        g = torch.Generator().manual_seed(1)
        self.v1 = torch.randn(B, CH, IMG, IMG, generator=g)
        self.v2 = torch.randn(B, CH, IMG, IMG, generator=g)

    def step(self):
        on = self.online
        self.opt.zero_grad(set_to_none=False)
        ids_shuffle = torch.argsort(torch.rand(B, L), dim=1)
        ids_restore = torch.argsort(ids_shuffle, dim=1)
        mask = torch.ones(B, L)
        mask[:, :KEEP] = 0
        mask = torch.gather(mask, 1, ids_restore)
        if not self.guided:
            lat = on["enc"](self.v1, ids_shuffle[:, :KEEP])
            loss = mae_loss(self.v1, on["dec"](lat, ids_restore), mask)
        else:
            keep = torch.cat([ids_shuffle[:, :KEEP], ids_shuffle[:, KEEP:2 * KEEP]], 0)
            lat = on["enc"](torch.cat([self.v1, self.v2], 0), keep)          # one 2B pass
            lat1, lat2 = lat[:B], lat[B:]
            l_mim = mae_loss(self.v1, on["dec"](lat1, ids_restore), mask)
            with torch.no_grad():
                tl = self.target["enc"](torch.cat([self.v1, self.v2], 0))
                t1 = self.target["head"](tl[:B, 1:].mean(1))
                t2 = self.target["head"](tl[B:, 1:].mean(1))
            q1 = on["predictor"](on["head"](lat1[:, 1:].mean(1)))
            q2 = on["predictor"](on["head"](lat2[:, 1:].mean(1)))
            loss = l_mim + ALPHA * (cosine(q2, t1) + cosine(q1, t2)) / 2
        loss.backward()
        self.opt.step()
        if self.guided:
            with torch.no_grad():
                torch._foreach_mul_(self.ema_pairs[0], 0.996)
                torch._foreach_add_(self.ema_pairs[0], self.ema_pairs[1], alpha=1 - 0.996)
        return loss.detach().item()


def time_steps(tr, min_time, min_steps=2):
    tr.step()  # warm-up
    n, t0 = 0, time.perf_counter()
    while n < min_steps or time.perf_counter() - t0 < min_time:
        tr.step()
        n += 1
    return B * n / (time.perf_counter() - t0)


def run_pytorch(threads, min_time):
    torch.manual_seed(0)
    res = {}
    for name, guided in (("lcmae", True), ("mae", False)):
        tr = Trainer(guided)
        best = None
        for t in threads:
            torch.set_num_threads(t)
            ips = time_steps(tr, min_time)
            print(f"  pytorch {name:6s} threads={t}: {ips:7.2f} images/s", flush=True)
            if best is None or ips > best[0]:
                best = (ips, t)
        res[name] = best
    return res


def run_cpp(path, min_time, extra=()):
    out = subprocess.run([path, "--benchmark_format=json", f"--benchmark_min_time={min_time}", *extra],
                         check=True, capture_output=True, text=True).stdout
    res = {}  # step -> [(provider, result)], the binary's default provider first
    for b in json.loads(out)["benchmarks"]:
        name = "lcmae" if "lcmae" in b["name"] else "mae"
        res.setdefault(name, []).append((b.get("label") or "eigen", b))
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--with-cpp", metavar="PATH", help="bench_train_step binary to run alongside")
    ap.add_argument("--threads", default="1,2", help="torch thread counts to try (best is reported)")
    ap.add_argument("--bf16", action="store_true",
                    help="also run ours with --precision=bf16 (CPUs with AVX512-BF16; the OpenBLAS row only)")
    ap.add_argument("--min-time", type=float, default=6.0, help="seconds per measurement")
    a = ap.parse_args()
    print(f"torch {torch.__version__}, load average {os.getloadavg()[0]:.2f}", flush=True)
    cpp = run_cpp(a.with_cpp, a.min_time) if a.with_cpp else None
    if cpp and a.bf16:
        extra = run_cpp(a.with_cpp, a.min_time, ["--precision=bf16", "--benchmark_filter=openblas:1"])
        for name, rows in extra.items():
            cpp[name] += rows
    pt = run_pytorch([int(t) for t in a.threads.split(",")], a.min_time)
    print()
    print(f"{'step':8s} {'pytorch img/s':>14s} {'(threads)':>9s}", end="")
    if cpp:
        print(f" {'gemm':>14s} {'lcmae img/s':>12s} {'ratio':>6s} {'GFLOP/s':>8s} {'ceiling':>8s} {'fraction':>8s}", end="")
    print()
    for name in ("lcmae", "mae"):
        ips, t = pt[name]
        rows = cpp[name] if cpp else [(None, None)]
        for provider, c in rows:
            print(f"{name:8s} {ips:14.2f} {t:9d}", end="")
            if c:
                print(f" {provider:>14s} {c['images/s']:12.2f} {c['images/s'] / ips:6.2f} {c['GFLOP/s']:8.1f} "
                      f"{c['ceiling_GFLOP/s']:8.1f} {c['GFLOP/s'] / c['ceiling_GFLOP/s']:8.2f}", end="")
            print()
    print(f"load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    sys.exit(main())
