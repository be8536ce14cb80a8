"""Reusable Transformer building blocks with key/value caching (used by several decoder plugins).

Pre-norm residual blocks (``x + dropout(sublayer(norm(x)))``) as in R2Gen's Transformer; attention
through ``scaled_dot_product_attention`` with boolean masks (True = may attend).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class MultiHeadAttention(nn.Module):
    """Multi-head attention that can return its projected keys/values for caching."""

    def __init__(self, d_model: int, heads: int, dropout: float) -> None:
        super().__init__()
        if d_model % heads:
            raise ValueError(f"d_model {d_model} is not divisible by heads {heads}")
        self.heads, self.d_head, self.dropout = heads, d_model // heads, dropout
        self.q = nn.Linear(d_model, d_model)
        self.k = nn.Linear(d_model, d_model)
        self.v = nn.Linear(d_model, d_model)
        self.out = nn.Linear(d_model, d_model)

    def split(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        return x.view(b, n, self.heads, self.d_head).transpose(1, 2)

    def project_kv(self, source: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.split(self.k(source)), self.split(self.v(source))

    def attend(self, query: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
               mask: torch.Tensor | None = None) -> torch.Tensor:
        q = self.split(self.q(query))
        p = self.dropout if self.training else 0.0
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        b, _, n, _ = out.shape
        return self.out(out.transpose(1, 2).reshape(b, n, self.heads * self.d_head))

    def forward(self, query: torch.Tensor, source: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        k, v = self.project_kv(source)
        return self.attend(query, k, v, mask)


class FeedForward(nn.Module):
    def __init__(self, d_model: int, d_ff: int, dropout: float) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d_model, d_ff), nn.ReLU(), nn.Dropout(dropout), nn.Linear(d_ff, d_model))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class EncoderLayer(nn.Module):
    """Self-attention + feed-forward over visual tokens."""

    def __init__(self, d_model: int, heads: int, d_ff: int, dropout: float) -> None:
        super().__init__()
        self.attn = MultiHeadAttention(d_model, heads, dropout)
        self.ff = FeedForward(d_model, d_ff, dropout)
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm1(x)
        x = x + self.drop(self.attn(h, h))
        return x + self.drop(self.ff(self.norm2(x)))


def xavier_init(module: nn.Module) -> None:
    """Xavier-uniform init of every matrix of ``module`` (R2Gen's and the annotated Transformer's init).

    Besides the projections this rescales the word embedding from ``nn.Embedding``'s N(0, 1) to about
    1/sqrt(D) per entry, so that after the usual ``* sqrt(D)`` a token enters the residual stream at unit
    scale instead of sqrt(D) times larger than what the cross-attention adds: with N(0, 1) embeddings the
    decoder barely hears the image and collapses to the language prior.
    """
    for parameter in module.parameters():
        if parameter.dim() > 1:
            nn.init.xavier_uniform_(parameter)


def sinusoid_positions(positions: torch.Tensor, d_model: int) -> torch.Tensor:
    """Sinusoidal position encodings for integer ``positions`` ([T]) -> [T, d_model]."""
    half = torch.arange(0, d_model, 2, device=positions.device, dtype=torch.float32)
    freq = torch.exp(-math.log(10000.0) * half / d_model)
    angles = positions.float()[:, None] * freq[None, :]
    enc = torch.zeros(positions.numel(), d_model, device=positions.device)
    enc[:, 0::2] = torch.sin(angles)
    enc[:, 1::2] = torch.cos(angles[:, : d_model // 2])
    return enc


def causal_mask(n_prefix: int, n_past: int, n_new: int, device: torch.device) -> torch.Tensor:
    """Mask [n_new, n_prefix + n_past + n_new]: prefix always visible, then causal over tokens."""
    past = n_prefix + n_past
    cols = torch.arange(past + n_new, device=device)
    rows = torch.arange(n_new, device=device) + past
    return cols[None, :] <= rows[:, None]
