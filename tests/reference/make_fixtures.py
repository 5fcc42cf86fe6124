#!/usr/bin/env python3
"""Write the PyTorch reference fixtures that lcmae's C++ tests compare against.

Run from anywhere:   python3 tests/reference/make_fixtures.py
Compare instead:     python3 tests/reference/make_fixtures.py --check
  (regenerates into a temporary folder, leaves fixtures/ alone, and reports how each file
  differs from the committed one; see "Reproducibility" in README.md)

Needs torch 2.x, timm 1.0.x, safetensors and numpy. CI does not run this script;
it only reads the committed files under tests/reference/fixtures/ (see README.md
next to this file for their exact contents).

Every step below follows /work/shared/SPEC.md; comments name the section
("SPEC 1", "SPEC 2", ...) so each line can be checked against it.

Numerics: initial weights and inputs are drawn in float32 and stored as float32;
the models are then converted to float64 (model.double()) and every forward,
backward, optimiser step and EMA update runs in float64. Results (losses,
gradients, final weights) are stored as float64.
"""

import json
import math
import os
import struct
import sys
from functools import partial

import torch
import torch.nn as nn
import torch.nn.functional as F
import timm
from timm.layers import PatchEmbed
from timm.models.vision_transformer import Block, VisionTransformer
from safetensors import safe_open

HERE = os.path.dirname(os.path.abspath(__file__))
OUT_DIR = os.path.join(HERE, "fixtures")

# --------------------------------------------------------------------------
# Tiny configuration (fixed; the C++ tests hard-code the same numbers and can
# also read them from each file's metadata).
# --------------------------------------------------------------------------
IMG = 16              # image side
PATCH = 4             # patch side p
CHANS = 3             # channels C
GRID = IMG // PATCH   # G = 4 patches per side
L = GRID * GRID       # 16 patch tokens
PATCH_DIM = PATCH * PATCH * CHANS  # 48 = p*p*C, length of a patchified vector

DIM = 32              # encoder width D
DEPTH = 2
HEADS = 2
MLP_RATIO = 4.0
DEC_DIM = 32          # MAE decoder width Dd
DEC_DEPTH = 1
DEC_HEADS = 2
HEAD_HIDDEN = 64      # hidden width of `head` and `predictor` (SPEC 3 "Heads")

BATCH = 8
MASK_RATIO = 0.75
LEN_KEEP = int(L * (1 - MASK_RATIO))   # SPEC 2: int(16 * 0.25) = 4
ALPHA = 0.25          # SPEC 3 "Total loss"
INFONCE_T = 0.2       # SPEC 3 InfoNCE temperature
SMOOTHL1_BETA = 1.0   # SPEC 3 Smooth L1 beta
NORM_PIX = True       # SPEC 2 norm_pix
NORM_PIX_EPS = 1e-6
LN_EPS = 1e-6         # SPEC 1 LayerNorm eps
BN_EPS = 1e-5         # SPEC 1 BatchNorm eps
BN_MOMENTUM = 0.1     # SPEC 1 BatchNorm momentum
COS_EPS = 1e-12       # SPEC 3 cosine: norms clamped at 1e-12

# LC-SimMIM block masking (SPEC 3 last bullet, scaled to the tiny model):
# blocks of 2x2 patches, so the grid of blocks is 2x2; ceil(4 * 0.6) = 3 masked.
SIMMIM_BLOCK = 2                                   # patches per block side
SIMMIM_BLOCK_GRID = GRID // SIMMIM_BLOCK           # 2
SIMMIM_RATIO = 0.6
SIMMIM_N_BLOCKS = SIMMIM_BLOCK_GRID ** 2           # 4
SIMMIM_N_MASKED = math.ceil(SIMMIM_N_BLOCKS * SIMMIM_RATIO)  # 3
SIMMIM_L1_EPS = 1e-5

# Optimisation (SPEC 4), with a constant learning rate for the test.
STEPS = 3
LR = 1e-3
BETAS = (0.9, 0.95)
ADAM_EPS = 1e-8
WEIGHT_DECAY = 0.05
EMA_BASE = 0.9        # SPEC 3 uses 0.996; 0.9 here so the EMA change is visible

INIT_SEED = 0         # torch.manual_seed for the weight initialisation
INPUT_SEED = 1234     # torch.Generator seed for images, ids_shuffle, masks
VIT_TINY_INPUT_SEED = 4321


def ema_decay(k, n=STEPS, base=EMA_BASE):
    """SPEC 3 'Target': d_k = 1 - (1 - base) (1 + cos(pi k / n)) / 2, k = optimiser step."""
    return 1.0 - (1.0 - base) * (1.0 + math.cos(math.pi * k / n)) / 2.0


# --------------------------------------------------------------------------
# SPEC 1: fixed 2-D sin-cos position embedding (not a parameter).
# --------------------------------------------------------------------------
def sincos_pos_embed(width, grid):
    """(1 + grid*grid, width) table; row 0 (the CLS slot) is zeros.

    For token n = i*G + j (row i, column j) and w_k = 10000^(-k/(W/4)):
      [0, W/4)    sin(j w_k)     [W/4, W/2)   cos(j w_k)
      [W/2, 3W/4) sin(i w_k)     [3W/4, W)    cos(i w_k)
    (column index first). Computed in float64 and rounded to float32 ("stored
    as float"); the rounded values are returned as float64.
    """
    assert width % 4 == 0
    q = width // 4
    k = torch.arange(q, dtype=torch.float64)
    omega = 10000.0 ** (-k / q)                                   # w_k
    n = torch.arange(grid * grid)
    row = (n // grid).to(torch.float64)[:, None]                  # i
    col = (n % grid).to(torch.float64)[:, None]                   # j
    emb = torch.cat([torch.sin(col * omega), torch.cos(col * omega),
                     torch.sin(row * omega), torch.cos(row * omega)], dim=1)
    emb = torch.cat([torch.zeros(1, width, dtype=torch.float64), emb], dim=0)
    return emb.float().double()


# --------------------------------------------------------------------------
# Modules. Attribute names are timm's / MAE's, so state_dict names are the
# names the C++ library uses.
# --------------------------------------------------------------------------
def make_block(dim, heads):
    """SPEC 1 'Block': timm's pre-norm Block, qkv with bias, exact GELU, LN eps 1e-6."""
    return Block(dim, heads, mlp_ratio=MLP_RATIO, qkv_bias=True,
                 norm_layer=partial(nn.LayerNorm, eps=LN_EPS))


def make_mlp_head(in_dim=DIM):
    """SPEC 3 'Heads': Linear(in,H,no bias) -> BatchNorm1d(H) -> ReLU -> Linear(H,D,no bias).

    in = D, or the decoder width for the projector of guided tokens "visible + mask" (Table 5e).
    nn.Sequential indices give the names head.0 / head.1 / head.3."""
    return nn.Sequential(
        nn.Linear(in_dim, HEAD_HIDDEN, bias=False),
        nn.BatchNorm1d(HEAD_HIDDEN, eps=BN_EPS, momentum=BN_MOMENTUM),
        nn.ReLU(),
        nn.Linear(HEAD_HIDDEN, DIM, bias=False),
    )


def add_encoder(m):
    """SPEC 1 / SPEC 2 encoder parameters: cls_token, patch_embed.proj, blocks, norm."""
    m.cls_token = nn.Parameter(torch.zeros(1, 1, DIM))
    m.patch_embed = PatchEmbed(img_size=IMG, patch_size=PATCH, in_chans=CHANS, embed_dim=DIM)
    m.blocks = nn.ModuleList([make_block(DIM, HEADS) for _ in range(DEPTH)])
    m.norm = nn.LayerNorm(DIM, eps=LN_EPS)


def add_decoder_trunk(m, dec_dim):
    """SPEC 2 'Decoder' up to decoder_norm: decoder_embed, decoder_blocks, decoder_norm."""
    m.decoder_embed = nn.Linear(DIM, dec_dim, bias=True)
    m.decoder_blocks = nn.ModuleList([make_block(dec_dim, DEC_HEADS) for _ in range(DEC_DEPTH)])
    m.decoder_norm = nn.LayerNorm(dec_dim, eps=LN_EPS)


class Online(nn.Module):
    """The trained (online) model.

    base == "mae":    encoder + MAE decoder (SPEC 2).
    base == "simmim": encoder with an in-encoder mask_token + linear decoder (SPEC 3 last bullet).
    guided:           adds the projector `head` and the `predictor` (SPEC 3 "Heads").
    decoded:          guided tokens "visible + mask" (SPEC 3 'Guided tokens', Table 5e): the
                      projector reads the pooled decoded tokens, so its input width is dec_dim.
    """

    def __init__(self, base, guided, dec_dim=DEC_DIM, decoded=False):
        super().__init__()
        self.base = base
        add_encoder(self)
        if base == "mae":
            # (attribute order = named_modules order = initialisation order, as before)
            self.decoder_embed = nn.Linear(DIM, dec_dim, bias=True)
            self.mask_token = nn.Parameter(torch.zeros(1, 1, dec_dim))
            self.decoder_blocks = nn.ModuleList([make_block(dec_dim, DEC_HEADS) for _ in range(DEC_DEPTH)])
            self.decoder_norm = nn.LayerNorm(dec_dim, eps=LN_EPS)
            self.decoder_pred = nn.Linear(dec_dim, PATCH_DIM, bias=True)
        elif base == "simmim":
            self.mask_token = nn.Parameter(torch.zeros(1, 1, DIM))
            self.decoder = nn.Linear(DIM, PATCH_DIM, bias=True)
        else:
            raise ValueError(base)
        if guided:
            self.head = make_mlp_head(dec_dim if decoded else DIM)
            self.predictor = make_mlp_head()


class Target(nn.Module):
    """SPEC 3 'Target (global) encoder': EMA copy of the online encoder + projector `head`.

    Same names as the online model (cls_token, patch_embed.*, blocks.*, norm.*, head.*).
    The decoder, the predictor and any mask_token are not part of it, except for guided tokens
    "visible + mask" (decoded=True, SPEC 3 'Guided tokens'): then it also holds the EMA copy of
    decoder_embed, decoder_blocks and decoder_norm (no mask_token, no decoder_pred)."""

    def __init__(self, dec_dim=DEC_DIM, decoded=False):
        super().__init__()
        add_encoder(self)
        if decoded:
            add_decoder_trunk(self, dec_dim)
        self.head = make_mlp_head(dec_dim if decoded else DIM)


# --------------------------------------------------------------------------
# SPEC 1 'Initialisation'.
# --------------------------------------------------------------------------
def init_weights(model):
    """Initialise every module of `model` in named_modules() order after manual_seed(INIT_SEED).

    Linear: xavier-uniform U(+-sqrt(6/(fan_in+fan_out))) on the whole weight (qkv as one
    (3D, D) matrix), bias 0. Patch-embed Conv2d: xavier-uniform on its (D, C*p*p) view,
    bias U(+-1/sqrt(C*p*p)). LayerNorm: 1 / 0. BatchNorm1d: 1 / 0, running mean 0, var 1.
    cls_token and mask_token: N(0, 0.02). (Also used on timm's VisionTransformer.)
    """
    torch.manual_seed(INIT_SEED)
    with torch.no_grad():
        for _, mod in model.named_modules():
            if isinstance(mod, nn.Linear):
                nn.init.xavier_uniform_(mod.weight)
                if mod.bias is not None:
                    nn.init.zeros_(mod.bias)
            elif isinstance(mod, nn.Conv2d):
                w = mod.weight
                nn.init.xavier_uniform_(w.view(w.shape[0], -1))   # fans (C*p*p, D)
                fan_in = w.shape[1] * w.shape[2] * w.shape[3]
                bound = 1.0 / math.sqrt(fan_in)
                nn.init.uniform_(mod.bias, -bound, bound)
            elif isinstance(mod, nn.LayerNorm):
                nn.init.ones_(mod.weight)
                nn.init.zeros_(mod.bias)
            elif isinstance(mod, nn.BatchNorm1d):
                nn.init.ones_(mod.weight)
                nn.init.zeros_(mod.bias)
                mod.reset_running_stats()   # running_mean 0, running_var 1
        nn.init.normal_(model.cls_token, std=0.02)
        if hasattr(model, "mask_token"):
            nn.init.normal_(model.mask_token, std=0.02)


def is_bn_counter(name):
    return name.endswith("num_batches_tracked")


def tensors_of(module):
    """Every parameter and BatchNorm running buffer (no num_batches_tracked), by state_dict name."""
    return {k: v for k, v in module.state_dict().items() if not is_bn_counter(k)}


# --------------------------------------------------------------------------
# SPEC 1 / SPEC 2: patchify, random-masking gather, encoder, MAE decoder, MIM loss.
# --------------------------------------------------------------------------
def patchify(imgs):
    """(B, C, H, W) -> (B, L, p*p*C); each patch vector ordered (ky, kx, c), c fastest;
    tokens row-major (token n = row*G + col)."""
    B = imgs.shape[0]
    x = imgs.reshape(B, CHANS, GRID, PATCH, GRID, PATCH)       # b c gy ky gx kx
    x = x.permute(0, 2, 4, 3, 5, 1)                            # b gy gx ky kx c
    return x.reshape(B, L, PATCH_DIM)


def unpatchify(x):
    """Inverse of patchify: (B, L, p*p*C) -> (B, C, H, W)."""
    B = x.shape[0]
    x = x.reshape(B, GRID, GRID, PATCH, PATCH, CHANS)          # b gy gx ky kx c
    x = x.permute(0, 5, 1, 3, 2, 4)                            # b c gy ky gx kx
    return x.reshape(B, CHANS, IMG, IMG)


def gather_tokens(x, ids):
    """x (B, N, W), ids (B, K) -> (B, K, W): x[b, ids[b, k]] (MAE's torch.gather)."""
    return torch.gather(x, 1, ids.unsqueeze(-1).expand(-1, -1, x.shape[-1]))


def encoder_forward(m, imgs, pos, keep_ids=None, token_mask=None):
    """SPEC 2 'Encoder' (and SPEC 3 LC-SimMIM when token_mask is given).

    m: Online or Target (anything with cls_token, patch_embed, blocks, norm).
    keep_ids (B, K): the kept tokens, gathered IN THIS ORDER (MAE random masking); None = all.
    token_mask (B, L): SimMIM mask w, 1 = masked; x = x (1 - w) + mask_token w.
    Returns (B, 1 + K, D) after the final LayerNorm `norm`, CLS first.
    """
    x = m.patch_embed(imgs)                                    # (B, L, D), row-major tokens
    if token_mask is not None:                                 # SimMIM: mask tokens in the encoder
        w = token_mask.unsqueeze(-1).to(x.dtype)
        x = x * (1.0 - w) + m.mask_token * w
    x = x + pos[None, 1:, :]                                   # add pos_embed[1:]
    if keep_ids is not None:
        x = gather_tokens(x, keep_ids)                         # keep ids_shuffle[...] in order
    cls = (m.cls_token + pos[None, :1, :]).expand(x.shape[0], -1, -1)   # cls_token + pos_embed[0]
    x = torch.cat([cls, x], dim=1)
    for blk in m.blocks:
        x = blk(x)
    return m.norm(x)


def mae_decoder_forward(m, latent, ids_restore, dec_pos):
    """SPEC 2 'Decoder': embed all tokens (incl. cls), append mask tokens for the removed
    positions, un-shuffle with ids_restore, re-prepend cls, add the decoder pos-embed,
    blocks, decoder_norm, decoder_pred, drop the cls row. Returns (B, L, p*p*C)."""
    return m.decoder_pred(mae_decoder_tokens(m, latent, ids_restore, dec_pos))[:, 1:, :]


def mae_decoder_tokens(m, latent, ids_restore, dec_pos):
    """mae_decoder_forward up to decoder_norm: the DECODED tokens (B, 1 + L, Dd), cls row first,
    positions in token order (SPEC 3 'Guided tokens': what Table 5e pools)."""
    x = m.decoder_embed(latent)                                # (B, 1 + K, Dd)
    B, n_vis = x.shape[0], x.shape[1] - 1
    mask_tokens = m.mask_token.expand(B, L - n_vis, -1)
    x_ = torch.cat([x[:, 1:, :], mask_tokens], dim=1)          # (B, L, Dd) in shuffled order
    x_ = gather_tokens(x_, ids_restore)                        # back to original token order
    x = torch.cat([x[:, :1, :], x_], dim=1)
    x = x + dec_pos[None]
    for blk in m.decoder_blocks:
        x = blk(x)
    return m.decoder_norm(x)


def target_decoder_tokens(t, latent, dec_pos):
    """SPEC 3 'Guided tokens': the target's decoder copy on ALL of its tokens (no mask tokens,
    already in token order): decoder_embed, + decoder pos-embed, blocks, decoder_norm."""
    x = t.decoder_embed(latent) + dec_pos[None]                # (B, 1 + L, Dd)
    for blk in t.decoder_blocks:
        x = blk(x)
    return t.decoder_norm(x)


def mae_loss(imgs, pred, mask):
    """SPEC 2 'Loss': norm-pix target (unbiased variance, eps 1e-6), per-patch mean squared
    error, averaged over the masked patches of the whole batch."""
    target = patchify(imgs)
    if NORM_PIX:
        mean = target.mean(dim=-1, keepdim=True)
        var = target.var(dim=-1, keepdim=True, unbiased=True)   # divisor p*p*C - 1
        target = (target - mean) / (var + NORM_PIX_EPS) ** 0.5
    per_patch = ((pred - target) ** 2).mean(dim=-1)            # (B, L)
    return (per_patch * mask).sum() / mask.sum()


def simmim_loss(imgs, pred, token_mask):
    """SPEC 3 LC-SimMIM: sum(|x - x^| m) / (sum(m) + 1e-5) / C with m the pixel mask.

    Written per token: sum over masked tokens of sum |pred - patchify(x)| divided by
    (n_masked_tokens * p*p + 1e-5) and by C (sum(m) counts pixels of a 1-channel mask)."""
    l1 = (pred - patchify(imgs)).abs().sum(dim=-1)             # (B, L)
    n_pix = token_mask.sum() * PATCH * PATCH
    return (l1 * token_mask).sum() / (n_pix + SIMMIM_L1_EPS) / CHANS


def simmim_loss_pixelwise(imgs, pred, token_mask):
    """SimMIM's own pixel formula, used only as a cross-check of simmim_loss."""
    m = token_mask.reshape(-1, 1, GRID, GRID)
    m = m.repeat_interleave(PATCH, 2).repeat_interleave(PATCH, 3)   # (B, 1, H, W)
    rec = F.l1_loss(imgs, unpatchify(pred), reduction="none")       # (B, C, H, W)
    return (rec * m).sum() / (m.sum() + SIMMIM_L1_EPS) / CHANS


# --------------------------------------------------------------------------
# SPEC 3 'Guidance loss L_GG' policies. q = online (predictor output), t = target (constant).
# --------------------------------------------------------------------------
def loss_cosine(q, t):
    """2 - 2 cos(q, t), batch mean; norms clamped at 1e-12 (x / max(|x|, 1e-12))."""
    qn = F.normalize(q, dim=-1, eps=COS_EPS)
    tn = F.normalize(t, dim=-1, eps=COS_EPS)
    return (2.0 - 2.0 * (qn * tn).sum(dim=-1)).mean()


def loss_infonce(q, t):
    """Both l2-normalised; logits = q t^T / T; cross-entropy with labels on the diagonal
    (mean over the batch); times 2T."""
    qn = F.normalize(q, dim=-1, eps=COS_EPS)
    tn = F.normalize(t, dim=-1, eps=COS_EPS)
    logits = qn @ tn.t() / INFONCE_T
    labels = torch.arange(q.shape[0])
    return F.cross_entropy(logits, labels) * (2.0 * INFONCE_T)


def loss_smoothl1(q, t):
    """Elementwise 0.5 x^2 / beta if |x| < beta else |x| - 0.5 beta, mean over all elements."""
    return F.smooth_l1_loss(q, t, reduction="mean", beta=SMOOTHL1_BETA)


LOSSES = {"cosine": loss_cosine, "infonce": loss_infonce, "smoothl1": loss_smoothl1}


# --------------------------------------------------------------------------
# One training-step forward for each model kind.
# --------------------------------------------------------------------------
def forward_step(model, target, inp, kind, pos, dec_pos):
    """Return (l_mim, l_gg, l_total, refs) for the current weights.

    kind: dict(base="mae"|"simmim", loss="none"|"cosine"|"infonce"|"smoothl1",
               schedule="symmetric"|"paper").
    refs: intermediate tensors (for debugging the C++ side), detached.
    """
    v1, v2 = inp["view1"], inp["view2"]
    refs = {}
    guided = kind["loss"] != "none"
    decoded = kind.get("guided_tokens") == "visible_and_mask"   # SPEC 3 'Guided tokens' (Table 5e)

    if kind["base"] == "mae":
        # SPEC 2 random masking with the injected permutation.
        ids_shuffle = inp["ids_shuffle"]
        ids_restore = torch.argsort(ids_shuffle, dim=1)
        keep1 = ids_shuffle[:, :LEN_KEEP]                          # view 1 keep set
        mask1 = torch.ones(v1.shape[0], L, dtype=torch.float64)
        mask1[:, :LEN_KEEP] = 0.0
        mask1 = torch.gather(mask1, 1, ids_restore)               # 1 = removed, original order

        # Online encoder on masked view 1, decoder, MIM loss (view 1 only).
        lat1 = encoder_forward(model, v1, pos, keep_ids=keep1)    # (B, 1 + 4, D)
        if decoded:
            dec1 = mae_decoder_tokens(model, lat1, ids_restore, dec_pos)
            pred = model.decoder_pred(dec1)[:, 1:, :]
        else:
            pred = mae_decoder_forward(model, lat1, ids_restore, dec_pos)
        l_mim = mae_loss(v1, pred, mask1)
        refs.update({"latent1": lat1, "pred": pred, "mask1": mask1})
        online_pool1 = lat1[:, 1:, :].mean(dim=1)                 # SPEC 3 'Pooling': non-cls mean
        if decoded:
            # Table 5e: the mean of the decoded tokens at all L positions, visible and mask
            online_pool1 = dec1[:, 1:, :].mean(dim=1)
            refs["decoded1"] = dec1

        if guided and kind["schedule"] == "symmetric":
            # SPEC 3 'Symmetric': view 2 keeps ids_shuffle[len_keep : 2 len_keep].
            keep2 = ids_shuffle[:, LEN_KEEP:2 * LEN_KEEP]
            lat2 = encoder_forward(model, v2, pos, keep_ids=keep2)
            online_pool2 = lat2[:, 1:, :].mean(dim=1)
            refs["latent2"] = lat2
            if decoded:
                # view 2 through the decoder too (guidance only, no MIM loss): its shuffle puts
                # its keep set first, so MAE's un-shuffle places its tokens and mask tokens
                ids_shuffle2 = torch.cat([keep2, ids_shuffle[:, :LEN_KEEP], ids_shuffle[:, 2 * LEN_KEEP:]], dim=1)
                dec2 = mae_decoder_tokens(model, lat2, torch.argsort(ids_shuffle2, dim=1), dec_pos)
                online_pool2 = dec2[:, 1:, :].mean(dim=1)
                refs["decoded2"] = dec2
    else:
        # SPEC 3 LC-SimMIM: the encoder sees every token of view 1, masked ones replaced.
        w = inp["mask"]                                           # (B, L), 1 = masked
        lat1 = encoder_forward(model, v1, pos, token_mask=w)      # (B, 1 + L, D)
        z = lat1[:, 1:, :]                                        # drop cls
        pred = model.decoder(z)                                   # (B, L, p*p*C), patchify order
        l_mim = simmim_loss(v1, pred, w)
        check_close(l_mim, simmim_loss_pixelwise(v1, pred, w), 1e-13, "SimMIM L1 token vs pixel form")
        refs.update({"latent1": lat1, "pred": pred})
        vis = (1.0 - w).unsqueeze(-1)                             # pool the UNMASKED tokens only
        online_pool1 = (z * vis).sum(dim=1) / vis.sum(dim=1)

    if not guided:
        l_gg = torch.zeros((), dtype=torch.float64)
        return l_mim, l_gg, l_mim, refs

    loss_fn = LOSSES[kind["loss"]]

    # Target branch: eval mode (BN running statistics), full views, no gradient.
    with torch.no_grad():
        def target_vec(img):
            lat = encoder_forward(target, img, pos)               # all 16 tokens
            if decoded:                                           # Table 5e: pool the decoded tokens
                return target.head(target_decoder_tokens(target, lat, dec_pos)[:, 1:, :].mean(dim=1))
            return target.head(lat[:, 1:, :].mean(dim=1))        # t = head_ema(pool)

        if kind["schedule"] == "symmetric":
            t1, t2 = target_vec(v1), target_vec(v2)
        else:
            t2 = target_vec(v2)                                   # Paper: target on full view v

    # Online heads in train mode (BN batch statistics; running stats updated per call).
    q1 = model.predictor(model.head(online_pool1))                # view 1 first
    if kind["schedule"] == "symmetric":
        q2 = model.predictor(model.head(online_pool2))            # then view 2
        l_gg = (loss_fn(q2, t1) + loss_fn(q1, t2)) / 2.0          # SPEC 3 Symmetric
        refs.update({"q1": q1, "q2": q2, "t1": t1, "t2": t2})
    else:
        l_gg = loss_fn(q1, t2)                                    # SPEC 3 Paper: l(q_u, t_v)
        refs.update({"q": q1, "t": t2})

    l_total = l_mim + ALPHA * l_gg                                # SPEC 3 'Total loss'
    return l_mim, l_gg, l_total, refs


# --------------------------------------------------------------------------
# Optimiser and EMA (SPEC 4, SPEC 3 'Target').
# --------------------------------------------------------------------------
def decays(name, p):
    """SPEC 4: decay for ndim >= 2 not named *.bias (cls_token and mask_token decay)."""
    return p.ndim >= 2 and not name.endswith(".bias")


def make_adamw(model):
    dec = [p for n, p in model.named_parameters() if decays(n, p)]
    nodec = [p for n, p in model.named_parameters() if not decays(n, p)]
    return torch.optim.AdamW(
        [{"params": dec, "weight_decay": WEIGHT_DECAY}, {"params": nodec, "weight_decay": 0.0}],
        lr=LR, betas=BETAS, eps=ADAM_EPS, amsgrad=False, foreach=False, fused=False)


@torch.no_grad()
def check_first_adamw_step(model, before, grads):
    """Documents the optimiser the C++ side must reproduce (torch.optim.AdamW, step t):
    p <- p (1 - lr wd); m <- b1 m + (1-b1) g; v <- b2 v + (1-b2) g^2;
    p <- p - lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps). Checked here for t = 1."""
    b1, b2 = BETAS
    for n, p in model.named_parameters():
        g, p0 = grads[n], before[n]
        wd = WEIGHT_DECAY if decays(n, p) else 0.0
        m, v = (1 - b1) * g, (1 - b2) * g * g
        expect = p0 * (1 - LR * wd) - LR * (m / (1 - b1)) / (torch.sqrt(v / (1 - b2)) + ADAM_EPS)
        err = float((p - expect).abs().max())
        check(err <= 1e-14, f"AdamW formula for {n}: max error {err}")


def check_batchnorm_convention():
    """Documents BatchNorm1d in train mode: normalise with the biased batch variance;
    running_var <- (1 - momentum) running_var + momentum * UNBIASED batch variance."""
    bn = nn.BatchNorm1d(4, eps=BN_EPS, momentum=BN_MOMENTUM).double().train()
    x = torch.randn(BATCH, 4, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    y = bn(x)
    mu, var_b = x.mean(0), x.var(0, unbiased=False)
    check(torch.allclose(y, (x - mu) / torch.sqrt(var_b + BN_EPS), atol=1e-14), "BN forward convention")
    check(torch.allclose(bn.running_mean, BN_MOMENTUM * mu, atol=1e-15), "BN running_mean convention")
    check(torch.allclose(bn.running_var, (1 - BN_MOMENTUM) + BN_MOMENTUM * x.var(0, unbiased=True),
                         atol=1e-15), "BN running_var convention")


def check_layout_conventions(pos):
    """SPEC 1: pos-embed column index first; conv patch embedding == Linear on patchify
    with the weight permuted (D, C, p, p) -> (D, p, p, C)."""
    q = DIM // 4
    # token 1 is (row 0, col 1): column dims non-zero, row sin dims zero, row cos dims one.
    check(float(pos[2, 0:q].abs().sum()) > 0 and float(pos[2, 2 * q:3 * q].abs().sum()) == 0.0
          and bool((pos[2, 3 * q:] == 1.0).all()), "pos-embed column first")
    check(float(pos[0].abs().sum()) == 0.0, "pos-embed CLS row zero")
    pe = PatchEmbed(img_size=IMG, patch_size=PATCH, in_chans=CHANS, embed_dim=DIM).double()
    x = torch.randn(2, CHANS, IMG, IMG, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    w = pe.proj.weight.permute(0, 2, 3, 1).reshape(DIM, PATCH_DIM)
    check(torch.allclose(pe(x), patchify(x) @ w.t() + pe.proj.bias, atol=1e-12), "patchify layout")
    check(torch.equal(unpatchify(patchify(x)), x), "unpatchify inverts patchify")


@torch.no_grad()
def ema_update(target, online, d):
    """ema = d * ema + (1 - d) * online over every target parameter and BN running buffer."""
    src = tensors_of(online)
    for name, t in tensors_of(target).items():
        t.copy_(d * t + (1.0 - d) * src[name])


# --------------------------------------------------------------------------
# Checks and helpers.
# --------------------------------------------------------------------------
def check(cond, what):
    if not cond:
        sys.exit(f"make_fixtures.py: check failed: {what}")


def check_close(a, b, rtol, what):
    a, b = float(torch.as_tensor(a).detach()), float(torch.as_tensor(b).detach())
    check(abs(a - b) <= rtol * max(abs(a), abs(b), 1e-300), f"{what}: {a!r} vs {b!r}")


def make_inputs():
    """view1, view2 ~ N(0,1) float32 (B,3,16,16); ids_shuffle = argsort of U[0,1) noise
    (SPEC 2); SimMIM block mask: 3 of the 4 (2x2-patch) blocks per sample."""
    g = torch.Generator().manual_seed(INPUT_SEED)
    view1 = torch.randn(BATCH, CHANS, IMG, IMG, generator=g, dtype=torch.float32)
    view2 = torch.randn(BATCH, CHANS, IMG, IMG, generator=g, dtype=torch.float32)
    noise = torch.rand(BATCH, L, generator=g, dtype=torch.float32)
    ids_shuffle = torch.argsort(noise, dim=1).to(torch.int64)
    blocks = torch.zeros(BATCH, SIMMIM_N_BLOCKS, dtype=torch.float32)
    for b in range(BATCH):
        chosen = torch.randperm(SIMMIM_N_BLOCKS, generator=g)[:SIMMIM_N_MASKED]
        blocks[b, chosen] = 1.0
    blocks = blocks.reshape(BATCH, SIMMIM_BLOCK_GRID, SIMMIM_BLOCK_GRID)
    mask = blocks.repeat_interleave(SIMMIM_BLOCK, 1).repeat_interleave(SIMMIM_BLOCK, 2)
    mask = mask.reshape(BATCH, L).contiguous()                     # per token, row-major
    return {"view1": view1, "view2": view2, "ids_shuffle": ids_shuffle, "mask": mask}


def base_metadata():
    return {
        "generator": "tests/reference/make_fixtures.py",
        "torch_version": torch.__version__.split("+")[0],
        "timm_version": timm.__version__,
        "img_size": str(IMG), "patch_size": str(PATCH), "in_chans": str(CHANS),
        "num_patches": str(L), "grid": str(GRID),
        "embed_dim": str(DIM), "depth": str(DEPTH), "num_heads": str(HEADS),
        "mlp_ratio": str(MLP_RATIO), "qkv_bias": "true", "ln_eps": repr(LN_EPS),
        "gelu": "exact_erf", "pos_embed": "sincos2d_fixed_col_first_cls_zero_float32",
        "init_seed": str(INIT_SEED), "input_seed": str(INPUT_SEED),
        "batch": str(BATCH), "dtype_compute": "float64",
    }


def kind_metadata(kind):
    md = base_metadata()
    md.update({
        "model": kind["name"], "base": kind["base"], "guidance_loss": kind["loss"],
        "schedule": kind["schedule"] if kind["loss"] != "none" else "none",
        "steps": str(STEPS), "lr": repr(LR), "lr_schedule": "constant",
        "adamw_beta1": repr(BETAS[0]), "adamw_beta2": repr(BETAS[1]), "adamw_eps": repr(ADAM_EPS),
        "weight_decay": repr(WEIGHT_DECAY), "weight_decay_rule": "ndim>=2 and not *.bias",
    })
    if kind["base"] == "mae":
        md.update({
            "mask_ratio": repr(MASK_RATIO), "len_keep": str(LEN_KEEP),
            "decoder_embed_dim": str(kind.get("dec_dim", DEC_DIM)), "decoder_depth": str(DEC_DEPTH),
            "decoder_num_heads": str(DEC_HEADS),
            "norm_pix_loss": "true" if NORM_PIX else "false", "norm_pix_eps": repr(NORM_PIX_EPS),
            "norm_pix_var": "unbiased",
        })
    else:
        md.update({
            "simmim_mask_block_patches": str(SIMMIM_BLOCK), "simmim_mask_ratio": repr(SIMMIM_RATIO),
            "simmim_masked_blocks": str(SIMMIM_N_MASKED), "simmim_l1_eps": repr(SIMMIM_L1_EPS),
            "norm_pix_loss": "false",
        })
    if kind["loss"] != "none":
        md.update({
            "alpha": repr(ALPHA), "head_hidden": str(HEAD_HIDDEN), "head_layers": "2",
            "predictor_layers": "2", "bn_eps": repr(BN_EPS), "bn_momentum": repr(BN_MOMENTUM),
            "pooling": "mean_unmasked_non_cls_after_norm",
            "ema_base": repr(EMA_BASE),
            "ema_decays": ",".join(repr(ema_decay(k)) for k in range(STEPS)),
            "target_mask_ratio": "0",
        })
        if kind["loss"] == "infonce":
            md["infonce_temperature"] = repr(INFONCE_T)
        if kind["loss"] == "smoothl1":
            md["smoothl1_beta"] = repr(SMOOTHL1_BETA)
        if kind["loss"] == "cosine":
            md["cosine_norm_eps"] = repr(COS_EPS)
        if kind.get("guided_tokens") == "visible_and_mask":
            md.update({
                "guided_tokens": "visible_and_mask",
                "pooling": "mean_decoded_tokens_all_positions_after_decoder_norm",
                "head_in_dim": str(kind["dec_dim"]),
                "target_decoder": "ema_copy_of_decoder_embed_decoder_blocks_decoder_norm_on_all_tokens",
                "online_decoder_views": "1_and_2_mim_loss_on_view_1_only",
            })
    return md


SAFETENSORS_DTYPES = {torch.float32: "F32", torch.float64: "F64", torch.int64: "I64"}


def save(path, tensors, metadata):
    """Write a safetensors file deterministically (byte-identical on every run).

    safetensors' own writer emits the __metadata__ map in hash order, which changes between
    runs, so the (simple) format is written here: u64 little-endian header length, a JSON
    header with sorted keys (padded with spaces to a multiple of 8 bytes), then the raw
    little-endian data. Tensors are laid out 8-byte types first, then by name, so every
    tensor is naturally aligned. The file is read back with safetensors as a check."""
    arrays = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    order = sorted(arrays, key=lambda k: (-arrays[k].element_size(), k))
    header, blobs, offset = {"__metadata__": dict(sorted(metadata.items()))}, [], 0
    for k in order:
        t = arrays[k]
        blob = t.numpy().astype(t.numpy().dtype.newbyteorder("<"), copy=False).tobytes()
        header[k] = {"dtype": SAFETENSORS_DTYPES[t.dtype], "shape": list(t.shape),
                     "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)
    with safe_open(path, framework="pt") as f:                   # read-back check
        check(f.metadata() == metadata, f"{path}: metadata round trip")
        check(set(f.keys()) == set(arrays), f"{path}: names round trip")
        for k in f.keys():
            check(torch.equal(f.get_tensor(k), arrays[k]), f"{path}: {k} round trip")


def check_decoded_guidance(kind, model, l_mim, l_gg):
    """Table 5e (SPEC 3 'Guided tokens'): pooling the decoded tokens gives mask_token a guidance
    gradient through the decoder's attention (pooling right after decoder_embed gave it none: the
    heads' BatchNorm removes a per-batch constant), and the decoder blocks one too; decoder_pred
    gets none (it lies after the pooled tokens)."""
    names = ["mask_token", "decoder_embed.weight", "decoder_blocks.0.attn.qkv.weight", "blocks.0.attn.qkv.weight",
             "decoder_pred.weight"]
    params = dict(model.named_parameters())
    g_gg = torch.autograd.grad(ALPHA * l_gg, [params[n] for n in names], retain_graph=True, allow_unused=True)
    g_mim = torch.autograd.grad(l_mim, [params[n] for n in names], retain_graph=True, allow_unused=True)
    for n, gg, gm in zip(names, g_gg, g_mim):
        if n == "decoder_pred.weight":
            check(gg is None or float(gg.abs().max()) == 0.0, f"{kind['name']}: guidance reaches decoder_pred")
            continue
        ratio = float(gg.norm() / gm.norm())
        check(ratio > 1e-3, f"{kind['name']}: guidance gradient of {n} is {ratio:.2e} of the MIM one")


# --------------------------------------------------------------------------
# One fixture: build, initialise, train 3 steps, check, save.
# --------------------------------------------------------------------------
def make_fixture(kind, inputs, pos, dec_pos):
    guided = kind["loss"] != "none"
    decoded = kind.get("guided_tokens") == "visible_and_mask"
    dec_dim = kind.get("dec_dim", DEC_DIM)
    model = Online(kind["base"], guided, dec_dim, decoded)
    init_weights(model)
    init = {k: v.clone() for k, v in tensors_of(model).items()}   # float32
    check(all(v.dtype == torch.float32 for v in init.values()), "init is float32")

    model = model.double().train()
    target = None
    if guided:
        target = Target(dec_dim, decoded).double().eval()
        own = tensors_of(model)
        with torch.no_grad():
            for name, t in tensors_of(target).items():            # exact copy at init
                t.copy_(own[name])
        for p in target.parameters():
            p.requires_grad_(False)

    inp = {
        "view1": inputs["view1"].double(), "view2": inputs["view2"].double(),
        "ids_shuffle": inputs["ids_shuffle"], "mask": inputs["mask"].double(),
    }
    opt = make_adamw(model)
    losses = {"mim": [], "gg": [], "total": []}
    grads, refs0 = {}, {}
    for k in range(STEPS):
        opt.zero_grad(set_to_none=True)
        l_mim, l_gg, l_total, refs = forward_step(model, target, inp, kind, pos, dec_pos)
        if decoded and k == 0:
            check_decoded_guidance(kind, model, l_mim, l_gg)
        l_total.backward()
        if k == 0:
            grads = {n: p.grad.detach().clone() for n, p in model.named_parameters()}
            refs0 = {n: r.detach().clone() for n, r in refs.items()}
            before = {n: p.detach().clone() for n, p in model.named_parameters()}
        opt.step()
        if k == 0:
            check_first_adamw_step(model, before, grads)
        if guided:
            ema_update(target, model, ema_decay(k))               # after each optimiser step
        losses["mim"].append(l_mim.item())
        losses["gg"].append(l_gg.item())
        losses["total"].append(l_total.item())

    final = {k: v.detach().clone() for k, v in tensors_of(model).items()}

    # ---- sanity checks ----
    for n, g in grads.items():
        check(g is not None and float(g.norm()) > 0.0, f"{kind['name']}: zero gradient for {n}")
    check(set(grads) == {n for n, _ in model.named_parameters()}, "a grad for every parameter")
    if kind["base"] == "mae":
        check((refs0["mask1"].sum(dim=1) == L - LEN_KEEP).all(), "mask has L - len_keep ones")
        kept = torch.zeros(BATCH, L, dtype=torch.float64).scatter_(1, inp["ids_shuffle"][:, :LEN_KEEP], 1.0)
        check(torch.equal(kept, 1.0 - refs0["mask1"]), "mask = complement of keep set 1")
    check(losses["total"][2] < losses["total"][0], f"{kind['name']}: total loss did not decrease")
    if not guided:
        check(losses["mim"][0] > losses["mim"][1] > losses["mim"][2], "MAE loss decreases every step")
    for n in init:
        check(not torch.equal(final[n], init[n].double()), f"{kind['name']}: {n} did not change")
    out = {}
    for n, v in init.items():
        out[f"init.{n}"] = v
    out["input.view1"] = inputs["view1"]
    out["input.view2"] = inputs["view2"]
    if kind["base"] == "mae":
        out["input.ids_shuffle"] = inputs["ids_shuffle"]
    else:
        out["input.mask"] = inputs["mask"]
    for key, vals in losses.items():
        out[f"loss.{key}"] = torch.tensor(vals, dtype=torch.float64)
    for n, g in grads.items():
        out[f"grad.{n}"] = g
    for n, v in final.items():
        out[f"final.{n}"] = v
    if guided:
        tfinal = tensors_of(target)
        for n, v in tfinal.items():
            check(not torch.equal(v, init[n].double()), f"{kind['name']}: target {n} did not change")
            out[f"final.target.{n}"] = v.detach().clone()
        out["ref.ema_decay"] = torch.tensor([ema_decay(k) for k in range(STEPS)], dtype=torch.float64)
    out["ref.pos_embed"] = pos
    if kind["base"] == "mae":
        out["ref.decoder_pos_embed"] = dec_pos
    for n, r in refs0.items():
        out[f"ref.step0.{n}"] = r.double()
    for v in out.values():
        check(torch.isfinite(v.double()).all(), f"{kind['name']}: non-finite values")

    path = os.path.join(OUT_DIR, f"{kind['name']}.safetensors")
    save(path, out, kind_metadata(kind))
    return losses


# --------------------------------------------------------------------------
# Gradient accumulation: LC-MAE (cosine, Symmetric) with each optimiser step made of
# ACCUM_MICRO micro-batches of BATCH / ACCUM_MICRO samples, each loss scaled by 1 / ACCUM_MICRO.
# --------------------------------------------------------------------------
ACCUM_MICRO = 2       # micro-batches per optimiser step
ACCUM_STEPS = 2       # optimiser steps
ACCUM_NAME = "lcmae_cosine_accum2"


def make_accum_fixture(inputs, pos, dec_pos):
    """Micro-batch m of every step is samples [m * Bm, (m + 1) * Bm) of the common inputs
    (Bm = 4): its own BatchNorm batch statistics, its own InfoNCE / cosine batch mean, and one
    more update of every online BN running buffer per head call (view 1 then view 2, micro-batch
    0 then 1). The gradient of a step is sum_m (1 / ACCUM_MICRO) d loss_m (one backward per
    micro-batch, accumulated in .grad); then one AdamW step and one EMA update with
    d_k = ema_decay(k, ACCUM_STEPS): 0.9, 0.95."""
    kind = dict(name=ACCUM_NAME, base="mae", loss="cosine", schedule="symmetric")
    bm = BATCH // ACCUM_MICRO
    model = Online("mae", True)
    init_weights(model)
    init = {k: v.clone() for k, v in tensors_of(model).items()}
    model = model.double().train()
    target = Target().double().eval()
    own = tensors_of(model)
    with torch.no_grad():
        for name, t in tensors_of(target).items():
            t.copy_(own[name])
    for p in target.parameters():
        p.requires_grad_(False)
    micro = [{"view1": inputs["view1"][m * bm:(m + 1) * bm].double(),
              "view2": inputs["view2"][m * bm:(m + 1) * bm].double(),
              "ids_shuffle": inputs["ids_shuffle"][m * bm:(m + 1) * bm]} for m in range(ACCUM_MICRO)]

    # Self-check first, on a scratch copy: the accumulated gradient is the mean of the
    # micro-batches' own gradients, and it is NOT the gradient of one batch of BATCH (the heads'
    # BatchNorm normalises each micro-batch with its own statistics), so the fixture tells
    # "accumulates k micro-batches" from "runs one big batch".
    probe_model = Online("mae", True).double().train()
    probe_model.load_state_dict(model.state_dict())
    singles = []
    for inp in micro:
        probe_model.zero_grad(set_to_none=True)
        forward_step(probe_model, target, inp, kind, pos, dec_pos)[2].backward()
        singles.append({n: p.grad.detach().clone() for n, p in probe_model.named_parameters()})
    probe_model.zero_grad(set_to_none=True)
    full = {"view1": inputs["view1"].double(), "view2": inputs["view2"].double(),
            "ids_shuffle": inputs["ids_shuffle"]}
    forward_step(probe_model, target, full, kind, pos, dec_pos)[2].backward()
    big = {n: p.grad.detach().clone() for n, p in probe_model.named_parameters()}

    opt = make_adamw(model)
    losses = {"mim": [], "gg": [], "total": []}
    grads = {}
    for k in range(ACCUM_STEPS):
        opt.zero_grad(set_to_none=True)
        for inp in micro:
            l_mim, l_gg, l_total, _ = forward_step(model, target, inp, kind, pos, dec_pos)
            (l_total / ACCUM_MICRO).backward()                    # loss_scale = 1 / k, accumulated
            losses["mim"].append(l_mim.item())
            losses["gg"].append(l_gg.item())
            losses["total"].append(l_total.item())
        if k == 0:
            grads = {n: p.grad.detach().clone() for n, p in model.named_parameters()}
        opt.step()
        ema_update(target, model, ema_decay(k, ACCUM_STEPS))

    for n, g in grads.items():
        mean = sum(s[n] for s in singles) / ACCUM_MICRO
        check(float((g - mean).abs().max()) <= 1e-14 * max(1.0, float(mean.abs().max())),
              f"{ACCUM_NAME}: accumulated gradient of {n} is the mean of the micro-batch gradients")
        check(float(g.norm()) > 0.0, f"{ACCUM_NAME}: zero gradient for {n}")
    head_diff = max(float((grads[n] - big[n]).norm() / big[n].norm()) for n in grads if n.startswith("head."))
    check(head_diff > 1e-3, f"{ACCUM_NAME}: accumulated gradient differs from one batch of {BATCH} ({head_diff})")
    final = {k: v.detach().clone() for k, v in tensors_of(model).items()}
    for n in init:
        check(not torch.equal(final[n], init[n].double()), f"{ACCUM_NAME}: {n} did not change")

    out = {f"init.{n}": v for n, v in init.items()}
    out["input.view1"] = inputs["view1"]
    out["input.view2"] = inputs["view2"]
    out["input.ids_shuffle"] = inputs["ids_shuffle"]
    for key, vals in losses.items():
        out[f"loss.{key}"] = torch.tensor(vals, dtype=torch.float64).reshape(ACCUM_STEPS, ACCUM_MICRO)
    for n, g in grads.items():
        out[f"grad.{n}"] = g
    for n, v in final.items():
        out[f"final.{n}"] = v
    for n, v in tensors_of(target).items():
        check(not torch.equal(v, init[n].double()), f"{ACCUM_NAME}: target {n} did not change")
        out[f"final.target.{n}"] = v.detach().clone()
    out["ref.ema_decay"] = torch.tensor([ema_decay(k, ACCUM_STEPS) for k in range(ACCUM_STEPS)], dtype=torch.float64)
    for v in out.values():
        check(torch.isfinite(v.double()).all(), f"{ACCUM_NAME}: non-finite values")
    md = kind_metadata(kind)
    md.update({"steps": str(ACCUM_STEPS), "accumulation": str(ACCUM_MICRO), "micro_batch": str(bm),
               "loss_scale": repr(1.0 / ACCUM_MICRO),
               "micro_batch_samples": "micro-batch m = samples [4m, 4m+4) of input.*",
               "ema_decays": ",".join(repr(ema_decay(k, ACCUM_STEPS)) for k in range(ACCUM_STEPS))})
    save(os.path.join(OUT_DIR, f"{ACCUM_NAME}.safetensors"), out, md)
    return losses


# --------------------------------------------------------------------------
# timm cross-checks: our names and encoder equal timm's VisionTransformer.
# --------------------------------------------------------------------------
def make_vit_tiny_forward(pos):
    vit = VisionTransformer(img_size=IMG, patch_size=PATCH, in_chans=CHANS, embed_dim=DIM,
                            depth=DEPTH, num_heads=HEADS, mlp_ratio=MLP_RATIO, qkv_bias=True,
                            num_classes=0, norm_layer=partial(nn.LayerNorm, eps=LN_EPS))
    init_weights(vit)
    with torch.no_grad():
        vit.pos_embed.copy_(pos.float()[None])                     # fixed sin-cos table
    init = {k: v.clone() for k, v in vit.state_dict().items()}
    g = torch.Generator().manual_seed(VIT_TINY_INPUT_SEED)
    images = torch.randn(4, CHANS, IMG, IMG, generator=g, dtype=torch.float32)
    vit = vit.double().eval()
    with torch.no_grad():
        feats = vit.forward_features(images.double())              # (4, 1 + L, D) after norm

        # Our encoder (same weights, loaded by name) must give the same features.
        ours = Target().double().eval()
        missing, unexpected = ours.load_state_dict(
            {k: v for k, v in vit.state_dict().items() if k != "pos_embed"}, strict=False)
        check(unexpected == [] and all(m.startswith("head.") for m in missing),
              f"names load into our encoder: {missing} {unexpected}")
        mine = encoder_forward(ours, images.double(), pos)
        check(torch.allclose(mine, feats, rtol=0, atol=1e-12), "our encoder equals timm's forward_features")

    out = {f"init.{k}": v for k, v in init.items()}
    out["input.images"] = images
    out["ref.features"] = feats
    md = base_metadata()
    md.update({"model": "vit_tiny_forward", "timm_class": "VisionTransformer", "num_classes": "0",
               "global_pool": "token", "batch": "4", "input_seed": str(VIT_TINY_INPUT_SEED)})
    save(os.path.join(OUT_DIR, "vit_tiny_forward.safetensors"), out, md)


def write_vit_base_names():
    model = timm.create_model("vit_base_patch16_224", pretrained=False, num_classes=0)
    lines, total = [], 0
    for name, t in model.state_dict().items():
        lines.append(f"{name}\t{','.join(str(s) for s in t.shape)}")
        total += t.numel()
    check(total == 85_798_656, f"vit_base_patch16_224 total {total}")
    lines.append(f"total\t{total}")
    with open(os.path.join(OUT_DIR, "vit_base_patch16_224_names.txt"), "w", newline="\n") as f:
        f.write("\n".join(lines) + "\n")


KINDS = [
    dict(name="mae", base="mae", loss="none", schedule="symmetric"),
    dict(name="lcmae_cosine", base="mae", loss="cosine", schedule="symmetric"),
    dict(name="lcmae_infonce", base="mae", loss="infonce", schedule="symmetric"),
    dict(name="lcmae_smoothl1", base="mae", loss="smoothl1", schedule="symmetric"),
    dict(name="lcmae_cosine_paper", base="mae", loss="cosine", schedule="paper"),
    dict(name="lcsimmim_cosine", base="simmim", loss="cosine", schedule="paper"),
    # Table 5e, guided tokens "visible + mask": a decoder narrower than D, so widths cannot mix
    dict(name="lcmae_cosine_visible_mask", base="mae", loss="cosine", schedule="symmetric",
         guided_tokens="visible_and_mask", dec_dim=24),
]


# Tolerances of --check for a regenerated F64 tensor against the committed one, as ||diff|| / ||ref||
# per tensor: at most half of what the C++ double-precision tests allow (test_reference_pytorch.cpp:
# losses 1e-14, gradients 2e-14, weights after the AdamW steps 3e-10), so that a regenerated set within them
# leaves those tests room for the C++ side's own rounding. Weights get more: AdamW turns the
# rounding noise of (near-)zero gradient elements into steps of up to lr.
def check_rel_tol(name):
    return 1e-10 if name.startswith("final.") else 1e-14


def compare_dirs(new_dir, ref_dir):
    """Per file: byte-identical, or F32/I64 tensors equal and F64 tensors within CHECK_REL_TOL.
    Returns True when every file passes."""
    ok = True
    for name in sorted(os.listdir(new_dir)):
        a, b = os.path.join(new_dir, name), os.path.join(ref_dir, name)
        if not os.path.exists(b):
            print(f"{name:36s} not committed")
            ok = False
            continue
        with open(a, "rb") as fa, open(b, "rb") as fb:
            if fa.read() == fb.read():
                print(f"{name:36s} byte-identical")
                continue
        if not name.endswith(".safetensors"):
            print(f"{name:36s} DIFFERS")
            ok = False
            continue
        worst, worst_name, worst_elem, exact_diff, over = 0.0, "", 0.0, [], []
        with safe_open(a, framework="pt") as A, safe_open(b, framework="pt") as B:
            if set(A.keys()) != set(B.keys()) or A.metadata() != B.metadata():
                print(f"{name:36s} DIFFERENT names or metadata")
                ok = False
                continue
            for k in sorted(A.keys()):
                x, y = A.get_tensor(k), B.get_tensor(k)
                if x.dtype != torch.float64:
                    if not torch.equal(x, y):
                        exact_diff.append(k)
                    continue
                d = float((x - y).norm())
                rel = d / float(y.norm()) if float(y.norm()) > 0 else d
                if rel > worst:
                    worst, worst_name = rel, k
                if rel > check_rel_tol(k):
                    over.append(k)
                worst_elem = max(worst_elem, float((x - y).abs().max()) / max(float(y.abs().max()), 1e-300))
        good = not exact_diff and not over
        ok = ok and good
        print(f"{name:36s} {'within tolerance' if good else 'OUT OF TOLERANCE (' + str(len(over)) + ' F64 tensors)'}: "
              f"F64 worst ||diff||/||ref|| "
              f"{worst:.2e} ({worst_name}), worst |diff| / max|ref| {worst_elem:.2e}; "
              f"F32/I64 tensors that differ: {len(exact_diff)}{' (' + ', '.join(exact_diff[:3]) + ', ...)' if exact_diff else ''}")
    return ok


def main():
    global OUT_DIR
    check_mode = "--check" in sys.argv[1:]
    torch.set_num_threads(1)                  # determinism and modest CPU use
    torch.use_deterministic_algorithms(True)
    if check_mode:
        import tempfile
        tmp = tempfile.TemporaryDirectory(prefix="lcmae_fixtures_")
        OUT_DIR = tmp.name
    os.makedirs(OUT_DIR, exist_ok=True)

    pos = sincos_pos_embed(DIM, GRID)          # encoder table, (1 + L, D)
    dec_pos = sincos_pos_embed(DEC_DIM, GRID)  # decoder table, (1 + L, Dd)
    inputs = make_inputs()
    check_batchnorm_convention()
    check_layout_conventions(pos)

    for kind in KINDS:
        kind_dec_pos = sincos_pos_embed(kind["dec_dim"], GRID) if "dec_dim" in kind else dec_pos
        losses = make_fixture(kind, inputs, pos, kind_dec_pos)
        print(f"{kind['name']:20s}", " ".join(
            f"{k}=[{', '.join(f'{v:.10f}' for v in vals)}]" for k, vals in losses.items()))
    losses = make_accum_fixture(inputs, pos, dec_pos)
    print(f"{ACCUM_NAME:20s}", " ".join(
        f"{k}=[{', '.join(f'{v:.10f}' for v in vals)}]" for k, vals in losses.items()))
    make_vit_tiny_forward(pos)
    write_vit_base_names()
    if not check_mode:
        print("wrote", OUT_DIR)
        return
    print(f"--check: regenerated with torch {torch.__version__}, timm {timm.__version__}, "
          f"ATen CPU capability {torch.backends.cpu.get_cpu_capability()}; against the committed files:")
    if not compare_dirs(OUT_DIR, os.path.join(HERE, "fixtures")):
        sys.exit("make_fixtures.py --check: some files differ beyond what the C++ tests tolerate")


if __name__ == "__main__":
    main()
