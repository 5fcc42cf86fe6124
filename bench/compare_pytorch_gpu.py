#!/usr/bin/env python3
"""The SPEC's LC-MAE and MAE training steps in PyTorch on a GPU: the figures to beat.

One full training step, batch B per view (default ViT-B/16, 224 px, B = 128):
  LC-MAE (Symmetric views): online encoder on both masked views (one 2B pass over 49 + cls
  tokens, disjoint keep sets from one noise draw), MAE decoder (512 wide, 8 blocks, 16 heads)
  + norm-pix MSE on view 1, target encoder on both full views (2B x 197 tokens, eval, no grad),
  projector (2 layers, BN, hidden 4096) and predictor (2 layers, BN) per view, target projector,
  symmetric cosine loss (L = L_MIM + 0.25 L_GG), backward, fused AdamW (weight-decay groups),
  foreach EMA of the target (params and BN buffers).
  MAE: encoder on one masked view, decoder, loss, backward, fused AdamW.
Modules are written out here (pre-norm blocks, qkv bias, exact GELU, LN eps 1e-6, attention
through F.scaled_dot_product_attention), the same layers as timm's Block.

Configurations (--configs, default all five; the compiled one runs last):
  a  LC-MAE, bf16 autocast, eager          b  LC-MAE, bf16 autocast, torch.compile
  c  LC-MAE, FP32 weights + TF32, eager    d  MAE, bf16 autocast, eager
  e  MAE, FP32 weights + TF32, eager
Each runs --warmup steps (compilation happens there and is not timed), then --steps timed steps
(CUDA events around each step); s/step is the median. images/s = B / (s/step). Peak memory is
torch.cuda.max_memory_allocated, reset per configuration. GFLOP per image are the analytic
count of LcmaeModel::flops_step (GEMMs and attention products, backward = 2x forward, the
target forward once), ~154 for LC-MAE ViT-B/16. Each configuration has its own time cap
(--cap, --compile-cap) and the whole run a --budget: a configuration that would not fit is
skipped, one that runs past its cap is cut short (reported with the steps it finished).

  python3 bench/compare_pytorch_gpu.py --json out.json                 # the GPU check
  python3 bench/compare_pytorch_gpu.py --skip-compile
  python3 bench/compare_pytorch_gpu.py --model tiny --batch 4 --device cpu --steps 2   # smoke test
"""

import argparse
import copy
import gc
import json
import os
import platform
import signal
import statistics
import sys
import time

T_START = time.perf_counter()  # --budget counts from here, so the import of torch is inside it

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

PRESETS = {
    # ViT-B/16 224 px with the MAE decoder 512 x 8 (16 heads), heads hidden 4096
    "base": dict(img=224, patch=16, dim=768, depth=12, heads=12, dec_dim=512, dec_depth=8, dec_heads=16),
    # the CPU Tiny preset of bench_train_step (32 px, patch 4)
    "tiny": dict(img=32, patch=4, dim=192, depth=12, heads=3, dec_dim=128, dec_depth=4, dec_heads=4),
}
CH, MASK_RATIO, ALPHA, EMA_DECAY = 3, 0.75, 0.25, 0.996

CONFIGS = {
    "a": dict(name="LC-MAE, bf16 autocast, eager", guided=True, bf16=True, compile=False),
    "b": dict(name="LC-MAE, bf16 autocast, torch.compile", guided=True, bf16=True, compile=True),
    "c": dict(name="LC-MAE, FP32 weights, TF32 matmuls, eager", guided=True, bf16=False, compile=False),
    "d": dict(name="MAE, bf16 autocast, eager", guided=False, bf16=True, compile=False),
    "e": dict(name="MAE, FP32 weights, TF32 matmuls, eager", guided=False, bf16=False, compile=False),
}


class Geometry:
    def __init__(self, preset, hidden):
        self.__dict__.update(PRESETS[preset])
        self.hidden = hidden
        self.grid = self.img // self.patch
        self.L = self.grid * self.grid
        self.pdim = self.patch * self.patch * CH
        self.keep = int(self.L * (1 - MASK_RATIO))


# ---- analytic FLOPs (mirrors LcmaeModel::flops_step: 2 FLOP per multiply-add) ----------------
def flops_per_image(g, guided):
    lin = lambda rows, i, o: 2.0 * rows * i * o
    blk = lambda n, d: lin(n, d, 3 * d) + lin(n, d, d) + 4.0 * n * n * d + lin(n, d, 4 * d) + lin(n, 4 * d, d)
    patch = lambda k: lin(k, g.pdim, g.dim)
    enc_fwd = lambda k: patch(k) + g.depth * blk(1 + k, g.dim)
    enc_bwd = lambda k: 2.0 * enc_fwd(k) - patch(k)
    dec_fwd = lin(1 + g.keep, g.dim, g.dec_dim) + lin(1 + g.L, g.dec_dim, g.pdim) + g.dec_depth * blk(1 + g.L, g.dec_dim)
    head = lin(1, g.dim, g.hidden) + lin(1, g.hidden, g.dim)
    views = 2 if guided else 1
    f = views * (enc_fwd(g.keep) + enc_bwd(g.keep)) + 3.0 * dec_fwd
    if guided:
        f += views * (3.0 * 2 * head + enc_fwd(g.L) + head)
    return f


# ---- model -----------------------------------------------------------------------------------
def sincos_2d(width, grid):
    """SPEC 1: fixed 2-D sin-cos, column index first, row 0 (cls) zeros."""
    q = width // 4
    w = 1.0 / 10000 ** (torch.arange(q, dtype=torch.float64) / q)
    i, j = torch.meshgrid(torch.arange(grid, dtype=torch.float64), torch.arange(grid, dtype=torch.float64), indexing="ij")
    i, j = i.reshape(-1, 1) * w, j.reshape(-1, 1) * w
    pe = torch.cat([torch.sin(j), torch.cos(j), torch.sin(i), torch.cos(i)], 1)
    return torch.cat([torch.zeros(1, width, dtype=torch.float64), pe], 0).float().unsqueeze(0)


class Attention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        B, N, C = x.shape
        q, k, v = self.qkv(x).reshape(B, N, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
        x = F.scaled_dot_product_attention(q, k, v)
        return self.proj(x.transpose(1, 2).reshape(B, N, C))


class Block(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.fc1 = nn.Linear(dim, 4 * dim)
        self.fc2 = nn.Linear(4 * dim, dim)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))


def mlp_head(g):
    # 2 layers: Linear(D,H) -> BN(H) -> ReLU -> Linear(H,D), bias-free
    return nn.Sequential(nn.Linear(g.dim, g.hidden, bias=False), nn.BatchNorm1d(g.hidden), nn.ReLU(),
                         nn.Linear(g.hidden, g.dim, bias=False))


class Encoder(nn.Module):
    def __init__(self, g):
        super().__init__()
        self.g = g
        self.patch_embed = nn.Conv2d(CH, g.dim, g.patch, g.patch)
        self.cls_token = nn.Parameter(torch.randn(1, 1, g.dim) * 0.02)
        self.register_buffer("pos", sincos_2d(g.dim, g.grid))
        self.blocks = nn.ModuleList([Block(g.dim, g.heads) for _ in range(g.depth)])
        self.norm = nn.LayerNorm(g.dim, eps=1e-6)

    def forward(self, x, keep=None):
        x = self.patch_embed(x).flatten(2).transpose(1, 2) + self.pos[:, 1:]
        if keep is not None:
            x = torch.gather(x, 1, keep.unsqueeze(-1).expand(-1, -1, x.shape[-1]))
        x = torch.cat([(self.cls_token + self.pos[:, :1]).expand(x.shape[0], -1, -1), x], 1)
        for b in self.blocks:
            x = b(x)
        return self.norm(x)


class Decoder(nn.Module):
    def __init__(self, g):
        super().__init__()
        self.g = g
        self.embed = nn.Linear(g.dim, g.dec_dim)
        self.mask_token = nn.Parameter(torch.randn(1, 1, g.dec_dim) * 0.02)
        self.register_buffer("pos", sincos_2d(g.dec_dim, g.grid))
        self.blocks = nn.ModuleList([Block(g.dec_dim, g.dec_heads) for _ in range(g.dec_depth)])
        self.norm = nn.LayerNorm(g.dec_dim, eps=1e-6)
        self.pred = nn.Linear(g.dec_dim, g.pdim)

    def forward(self, lat, ids_restore):
        g = self.g
        x = self.embed(lat)
        x_ = torch.cat([x[:, 1:], self.mask_token.to(x.dtype).expand(x.shape[0], g.L - g.keep, -1)], 1)
        x_ = torch.gather(x_, 1, ids_restore.unsqueeze(-1).expand(-1, -1, x.shape[-1]))
        x = torch.cat([x[:, :1], x_], 1) + self.pos
        for b in self.blocks:
            x = b(x)
        return self.pred(self.norm(x))[:, 1:]


def init_weights(m):
    for mod in m.modules():
        if isinstance(mod, nn.Linear):
            nn.init.xavier_uniform_(mod.weight)
            if mod.bias is not None:
                nn.init.zeros_(mod.bias)
        elif isinstance(mod, nn.Conv2d):
            nn.init.xavier_uniform_(mod.weight.view(mod.weight.shape[0], -1))


def patchify(g, imgs):
    x = imgs.reshape(imgs.shape[0], CH, g.grid, g.patch, g.grid, g.patch).permute(0, 2, 4, 3, 5, 1)
    return x.reshape(imgs.shape[0], g.L, g.pdim)


def mae_loss(g, imgs, pred, mask):
    t = patchify(g, imgs)
    t = (t - t.mean(-1, keepdim=True)) / (t.var(-1, keepdim=True, unbiased=True) + 1e-6) ** 0.5
    return ((((pred.float() - t) ** 2).mean(-1)) * mask).sum() / mask.sum()


def cosine(q, t):
    return (2 - 2 * (F.normalize(q.float(), dim=-1) * F.normalize(t.float(), dim=-1)).sum(-1)).mean()


def make_adamw(named, device):
    dec = [p for n, p in named if p.ndim >= 2 and not n.endswith(".bias")]
    nodec = [p for n, p in named if not (p.ndim >= 2 and not n.endswith(".bias"))]
    groups = [{"params": dec, "weight_decay": 0.05}, {"params": nodec, "weight_decay": 0.0}]
    try:
        return torch.optim.AdamW(groups, lr=1.5e-4, betas=(0.9, 0.95), eps=1e-8, fused=True), "fused"
    except (RuntimeError, TypeError) as e:  # fused not available on this device / build
        print(f"  note: fused AdamW unavailable on {device} ({e}); using foreach", flush=True)
        return torch.optim.AdamW(groups, lr=1.5e-4, betas=(0.9, 0.95), eps=1e-8, foreach=True), "foreach"


class Trainer:
    def __init__(self, g, B, device, guided, bf16, compiled):
        self.g, self.B, self.device, self.guided, self.bf16 = g, B, device, guided, bf16
        with torch.device(device):
            self.online = nn.ModuleDict({"enc": Encoder(g), "dec": Decoder(g)})
            if guided:
                self.online["head"] = mlp_head(g)
                self.online["predictor"] = mlp_head(g)
            init_weights(self.online)
            self.v1 = torch.randn(B, CH, g.img, g.img)
            self.v2 = torch.randn(B, CH, g.img, g.img)
        if guided:
            self.target = nn.ModuleDict({"enc": copy.deepcopy(self.online["enc"]),
                                         "head": copy.deepcopy(self.online["head"])}).eval()
            for p in self.target.parameters():
                p.requires_grad_(False)
            on = dict(self.online.named_parameters())
            on.update(dict(self.online.named_buffers()))
            tgt = list(self.target.named_parameters()) + [(n, b) for n, b in self.target.named_buffers()
                                                           if b.dtype.is_floating_point and not n.endswith(".pos")]
            self.ema_dst = [t for _, t in tgt]
            self.ema_src = [on[n] for n, _ in tgt]
        self.opt, self.opt_kind = make_adamw(list(self.online.named_parameters()), device)
        self.fwd = torch.compile(self.forward_loss) if compiled else self.forward_loss

    def forward_loss(self, v1, v2, noise):
        g, B, on = self.g, self.B, self.online
        ids_shuffle = torch.argsort(noise, dim=1)
        ids_restore = torch.argsort(ids_shuffle, dim=1)
        mask = torch.ones(B, g.L, device=noise.device)
        mask[:, :g.keep] = 0
        mask = torch.gather(mask, 1, ids_restore)
        with torch.autocast(device_type=noise.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            if not self.guided:
                lat = on["enc"](v1, ids_shuffle[:, :g.keep])
                return mae_loss(g, v1, on["dec"](lat, ids_restore), mask)
            keep = torch.cat([ids_shuffle[:, :g.keep], ids_shuffle[:, g.keep:2 * g.keep]], 0)
            lat = on["enc"](torch.cat([v1, v2], 0), keep)          # one 2B pass
            lat1, lat2 = lat[:B], lat[B:]
            l_mim = mae_loss(g, v1, on["dec"](lat1, ids_restore), mask)
            with torch.no_grad():
                tl = self.target["enc"](torch.cat([v1, v2], 0))
                t1 = self.target["head"](tl[:B, 1:].mean(1))
                t2 = self.target["head"](tl[B:, 1:].mean(1))
            q1 = on["predictor"](on["head"](lat1[:, 1:].mean(1)))
            q2 = on["predictor"](on["head"](lat2[:, 1:].mean(1)))
            return l_mim + ALPHA * (cosine(q2, t1) + cosine(q1, t2)) / 2

    def step(self):
        self.opt.zero_grad(set_to_none=True)
        noise = torch.rand(self.B, self.g.L, device=self.device)
        loss = self.fwd(self.v1, self.v2, noise)
        loss.backward()
        self.opt.step()
        if self.guided:
            with torch.no_grad():
                torch._foreach_lerp_(self.ema_dst, self.ema_src, 1 - EMA_DECAY)
        return loss.detach()


# ---- timing ----------------------------------------------------------------------------------
class CapReached(Exception):
    pass


def _on_alarm(signum, frame):
    raise CapReached()


def set_tf32(device):
    """FP32 matmuls and convolutions may use TF32 (configs c and e; harmless under autocast).

    The legacy calls on purpose: setting only the newer fp32_precision attributes leaves the legacy
    getters (which torch.compile's Inductor reads) raising "mix of the legacy and new APIs"."""
    if device.type != "cuda":  # on CPU "high" would route FP32 matmuls through oneDNN's bf16 paths
        return
    torch.set_float32_matmul_precision("high")
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cudnn.benchmark = True


class Timer:
    def __init__(self, device):
        self.cuda = device.type == "cuda"

    def sync(self):
        if self.cuda:
            torch.cuda.synchronize()

    def mark(self):
        if self.cuda:
            e = torch.cuda.Event(enable_timing=True)
            e.record()
            return e
        return time.perf_counter()

    def ms(self, a, b):
        return a.elapsed_time(b) if self.cuda else (b - a) * 1e3


def run_config(key, g, a, device, budget_left):
    c = CONFIGS[key]
    cap = a.compile_cap if c["compile"] else a.cap
    cap = min(cap, budget_left)
    r = dict(id=key, name=c["name"], guided=c["guided"], precision="bf16 autocast" if c["bf16"] else "fp32+tf32",
             compile=c["compile"], status="ok", steps=0, cap_s=round(cap, 1), wall_s=0.0)
    need = a.compile_min if c["compile"] else a.eager_min
    if budget_left < need:
        r["status"] = f"skipped (budget: {budget_left:.0f} s left, needs {need:.0f})"
        return r
    timer = Timer(device)
    if timer.cuda:
        torch.cuda.reset_peak_memory_stats()
    t_start = time.perf_counter()
    tr = None
    marks, losses = [], []
    old = signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, max(cap, 1.0))
    try:
        tr = Trainer(g, a.batch, device, c["guided"], c["bf16"], c["compile"])
        r["adamw"] = tr.opt_kind
        for _ in range(a.warmup):
            losses.append(tr.step())
        timer.sync()
        r["warmup_s"] = round(time.perf_counter() - t_start, 2)
        for _ in range(a.steps):
            m0 = timer.mark()
            loss = tr.step()
            m1 = timer.mark()
            marks.append((m0, m1))
            losses.append(loss)
        timer.sync()
    except CapReached:
        r["status"] = f"cut at cap {cap:.0f} s" if marks else f"timeout ({cap:.0f} s cap) before timing"
        # the step in flight when the alarm fired has no end mark; keep the finished ones
    except Exception as e:  # OOM, compile failure, ...: report and go on with the next config
        r["status"] = f"error: {type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    try:
        timer.sync()
        ms = [timer.ms(m0, m1) for m0, m1 in marks]
        if ms:
            med = statistics.median(ms) / 1e3
            r.update(steps=len(ms), s_per_step=med, s_per_step_mean=statistics.fmean(ms) / 1e3,
                     s_per_step_min=min(ms) / 1e3, images_per_s=a.batch / med,
                     gflop_per_image=flops_per_image(g, c["guided"]) / 1e9)
            r["tflops"] = r["gflop_per_image"] * r["images_per_s"] / 1e3
        if losses:
            lv = torch.stack([l.float() for l in losses]).cpu()
            r["loss_first"], r["loss_last"] = float(lv[0]), float(lv[-1])
            if not bool(torch.isfinite(lv).all()):
                r["status"] = "non-finite loss" if r["status"] == "ok" else r["status"] + " (non-finite loss)"
        if timer.cuda:
            r["peak_mem_gib"] = torch.cuda.max_memory_allocated() / 2**30
    except Exception as e:
        r["status"] = f"error after run: {type(e).__name__}: {str(e)[:200]}"
    r["wall_s"] = round(time.perf_counter() - t_start, 2)
    del tr, marks, losses
    gc.collect()
    if c["compile"]:
        torch._dynamo.reset()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return r


def fmt(v, spec, none="-"):
    return none if v is None else format(v, spec)


def table(results, order):
    rows = ["| config | s/step (median) | images/s | TFLOP/s | peak GPU memory | steps | status |",
            "|---|---:|---:|---:|---:|---:|---|"]
    by = {r["id"]: r for r in results}
    for k in order:
        if k not in by:
            continue
        r = by[k]
        mem = r.get("peak_mem_gib")
        rows.append(f"| ({k}) {r['name']} | {fmt(r.get('s_per_step'), '.4f')} | {fmt(r.get('images_per_s'), ',.0f')} | "
                    f"{fmt(r.get('tflops'), '.1f')} | {fmt(mem, '.1f')}{' GiB' if mem is not None else ''} | "
                    f"{r['steps']} | {r['status']} |")
    return "\n".join(rows)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda", help="cuda (default) or cpu (smoke tests only)")
    ap.add_argument("--model", default="base", choices=sorted(PRESETS), help="base = ViT-B/16 224 px")
    ap.add_argument("--batch", type=int, default=128, help="images per view (default 128)")
    ap.add_argument("--hidden", type=int, default=4096, help="projector/predictor hidden width")
    ap.add_argument("--configs", default="a,b,c,d,e", help="which configurations (a-e, comma separated)")
    ap.add_argument("--skip-compile", action="store_true", help="drop (b), the torch.compile configuration")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps first (compilation happens here)")
    ap.add_argument("--steps", type=int, default=30, help="timed steps per configuration (median reported)")
    ap.add_argument("--cap", type=float, default=35.0, help="seconds per eager configuration, all in")
    ap.add_argument("--compile-cap", type=float, default=150.0, help="seconds for (b), compilation included")
    ap.add_argument("--budget", type=float, default=230.0, help="seconds for the whole run; configs that "
                    "would not fit are skipped")
    ap.add_argument("--eager-min", type=float, default=12.0, help=argparse.SUPPRESS)
    ap.add_argument("--compile-min", type=float, default=60.0, help=argparse.SUPPRESS)
    ap.add_argument("--json", metavar="PATH", help="write the results as JSON here (rewritten after each config)")
    a = ap.parse_args()
    t0 = T_START

    device = torch.device(a.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda but torch.cuda.is_available() is False (no GPU or no CUDA build of torch)",
              file=sys.stderr)
        return 2
    keys = [k.strip() for k in a.configs.split(",") if k.strip()]
    bad = [k for k in keys if k not in CONFIGS]
    if bad:
        ap.error(f"unknown configs {bad}; choose from {sorted(CONFIGS)}")
    if a.skip_compile:
        keys = [k for k in keys if not CONFIGS[k]["compile"]]
    order = [k for k in keys if not CONFIGS[k]["compile"]] + [k for k in keys if CONFIGS[k]["compile"]]

    torch.manual_seed(0)
    set_tf32(device)
    g = Geometry(a.model, a.hidden)
    env = dict(torch=torch.__version__, python=platform.python_version(), device=str(device),
               host=platform.node(), date=time.strftime("%Y-%m-%d %H:%M:%S"))
    if device.type == "cuda":
        p = torch.cuda.get_device_properties(device)
        env.update(gpu=p.name, gpu_mem_gib=round(p.total_memory / 2**30, 1), sms=p.multi_processor_count,
                   cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version())
    else:
        env.update(threads=torch.get_num_threads())
    gf = {"lcmae": flops_per_image(g, True) / 1e9, "mae": flops_per_image(g, False) / 1e9}
    out = dict(env=env, model=a.model, geometry=dict(PRESETS[a.model], hidden=a.hidden, tokens=g.L, keep=g.keep),
               batch=a.batch, warmup=a.warmup, steps=a.steps, gflop_per_image=gf, results=[])
    print(f"torch {env['torch']} on {env.get('gpu', device)}; model {a.model} (img {g.img}, patch {g.patch}, "
          f"D {g.dim} x {g.depth}, decoder {g.dec_dim} x {g.dec_depth}, heads {a.hidden}), batch {a.batch} per view",
          flush=True)
    print(f"analytic GFLOP per image: LC-MAE {gf['lcmae']:.1f}, MAE {gf['mae']:.1f}; order {order}; "
          f"budget {a.budget:.0f} s", flush=True)

    def write_json():
        if a.json:
            tmp = a.json + ".tmp"
            with open(tmp, "w") as f:
                json.dump(out, f, indent=1)
            os.replace(tmp, a.json)

    for k in order:
        left = a.budget - (time.perf_counter() - t0)
        print(f"-- ({k}) {CONFIGS[k]['name']} ...", flush=True)
        try:
            r = run_config(k, g, a, device, left)
        except Exception as e:  # e.g. the cap's alarm landing between the run and its disarming
            r = dict(id=k, name=CONFIGS[k]["name"], status=f"error: {type(e).__name__}", steps=0, wall_s=0)
        out["results"].append(r)
        print(f"   {r['status']}: {fmt(r.get('s_per_step'), '.4f')} s/step, {fmt(r.get('images_per_s'), ',.1f')} "
              f"images/s, {fmt(r.get('peak_mem_gib'), '.2f')} GiB peak, {r['steps']} steps, warm-up "
              f"{r.get('warmup_s', '-')} s, wall {r['wall_s']} s, loss {fmt(r.get('loss_last'), '.4f')}", flush=True)
        write_json()

    out["wall_s"] = round(time.perf_counter() - t0, 1)
    write_json()
    print()
    print(table(out["results"], sorted(keys)))
    print(f"\nGFLOP/image: LC-MAE {gf['lcmae']:.1f}, MAE {gf['mae']:.1f} (analytic, GEMMs + attention). "
          f"Total {out['wall_s']} s.")
    # skipped for the budget or cut at a cap (with steps measured) is not a failure
    ok = all(r["status"] == "ok" or r["status"].startswith(("skipped", "cut at")) for r in out["results"])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
