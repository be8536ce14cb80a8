"""The Transformer report decoder (R2Gen's BASE model): visual context encoder + causal decoder.

Options (``decoder.*``): encoder and decoder depth, heads, feed-forward width, dropout, learnable
prompt tokens (MCSAM's "memory tokens": a prefix every token attends to, excluded from the LM loss),
and how semantic embeddings from an alignment module enter: ``add`` (their mean is added to every
word embedding) or ``attend`` (appended to the cross-attention context).

Incremental decoding keeps, per layer, the self-attention keys/values of everything decoded so far
(prompts included) and the cross-attention keys/values of the context, so one step costs O(t) and
gives exactly the full pass's logits.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from rrgbench.extension.components import BuildContext, Decoder
from rrgbench_builtins.layers import (
    EncoderLayer,
    FeedForward,
    MultiHeadAttention,
    causal_mask,
    sinusoid_positions,
    xavier_init,
)
from rrgbench_builtins.schemas import TransformerDecoderOptions


class DecoderLayer(nn.Module):
    """Pre-norm self-attention (cached), cross-attention and feed-forward."""

    def __init__(self, d_model: int, heads: int, d_ff: int, dropout: float) -> None:
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, heads, dropout)
        self.cross_attn = MultiHeadAttention(d_model, heads, dropout)
        self.ff = FeedForward(d_model, d_ff, dropout)
        self.norms = nn.ModuleList(nn.LayerNorm(d_model) for _ in range(3))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, past: tuple[torch.Tensor, torch.Tensor] | None, mask: torch.Tensor,
                cross: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        h = self.norms[0](x)
        k, v = self.self_attn.project_kv(h)
        if past is not None:
            k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)
        x = x + self.drop(self.self_attn.attend(h, k, v, mask))
        x = x + self.drop(self.cross_attn.attend(self.norms[1](x), *cross))
        x = x + self.drop(self.ff(self.norms[2](x)))
        return x, (k, v)


class TransformerDecoder(Decoder):
    """Encoder-decoder Transformer over visual tokens; see the module docstring."""

    def __init__(self, options: TransformerDecoderOptions, context: BuildContext) -> None:
        super().__init__()
        d = context.d_model
        self.d_model, self.semantic_mode = d, options.semantic_mode
        self.lut = nn.Embedding(context.vocab_size, d, padding_idx=context.pad_id)
        self.context_layers = nn.ModuleList(
            EncoderLayer(d, options.heads, options.d_ff, options.dropout) for _ in range(options.encoder_layers))
        self.context_norm = nn.LayerNorm(d) if options.encoder_layers else nn.Identity()
        self.layers = nn.ModuleList(
            DecoderLayer(d, options.heads, options.d_ff, options.dropout) for _ in range(options.layers))
        self.norm = nn.LayerNorm(d)
        self.proj = nn.Linear(d, context.vocab_size)
        self.input_drop = nn.Dropout(options.dropout)
        xavier_init(self)
        self.prompts = nn.Parameter(torch.randn(options.n_prompts, d) * 0.02) if options.n_prompts else None

    @property
    def n_prompts(self) -> int:
        return 0 if self.prompts is None else self.prompts.shape[0]

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        return self.lut(ids) * math.sqrt(self.d_model)

    def encode(self, context: torch.Tensor, semantic: torch.Tensor | None) -> dict[str, torch.Tensor]:
        x = context
        for layer in self.context_layers:
            x = layer(x)
        encoded = {"memory": self.context_norm(x)}
        if semantic is not None:
            if self.semantic_mode == "attend":
                encoded["memory"] = torch.cat([encoded["memory"], semantic], dim=1)
            else:
                encoded["bias"] = semantic.mean(dim=1, keepdim=True)
        return encoded

    def _inputs(self, encoded: dict[str, torch.Tensor], embeddings: torch.Tensor, start: int) -> torch.Tensor:
        positions = torch.arange(start, start + embeddings.shape[1], device=embeddings.device)
        x = embeddings + sinusoid_positions(positions, self.d_model).to(embeddings.dtype)
        if "bias" in encoded:
            x = x + encoded["bias"]
        return self.input_drop(x)

    def _cross(self, encoded: dict[str, torch.Tensor]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return [layer.cross_attn.project_kv(encoded["memory"]) for layer in self.layers]

    def _prompt_states(self, batch: int, cross: list, device: torch.device) -> tuple[torch.Tensor, list]:
        """Run the prompt prefix through the layers (prompts see each other, not the tokens)."""
        x = self.prompts.unsqueeze(0).expand(batch, -1, -1)
        mask = torch.ones(self.n_prompts, self.n_prompts, dtype=torch.bool, device=device)
        past = []
        for layer, kv in zip(self.layers, cross, strict=True):
            x, self_kv = layer(x, None, mask, kv)
            past.append(self_kv)
        return x, past

    def init_cache(self, encoded: dict[str, torch.Tensor]) -> dict[str, Any]:
        memory = encoded["memory"]
        cross = self._cross(encoded)
        past = None
        if self.prompts is not None:
            _, past = self._prompt_states(memory.shape[0], cross, memory.device)
        return {"t": 0, "cross": cross, "past": past}

    def decode(self, encoded: dict[str, torch.Tensor], embeddings: torch.Tensor,
               cache: dict[str, Any] | None = None) -> tuple[torch.Tensor, dict[str, Any] | None]:
        if cache is None:
            return self._full(encoded, embeddings), None
        x = self._inputs(encoded, embeddings, cache["t"])
        past = cache["past"]
        n_past = 0 if past is None else past[0][0].shape[2]
        mask = causal_mask(0, n_past, x.shape[1], x.device)
        new_past = []
        for i, layer in enumerate(self.layers):
            x, kv = layer(x, None if past is None else past[i], mask, cache["cross"][i])
            new_past.append(kv)
        cache = {"t": cache["t"] + embeddings.shape[1], "cross": cache["cross"], "past": new_past}
        return self.proj(self.norm(x)), cache

    def _full(self, encoded: dict[str, torch.Tensor], embeddings: torch.Tensor) -> torch.Tensor:
        x = self._inputs(encoded, embeddings, 0)
        n_tokens, n_prompts = x.shape[1], self.n_prompts
        if n_prompts:
            prompts = self.prompts.unsqueeze(0).expand(x.shape[0], -1, -1)
            x = torch.cat([prompts, x], dim=1)
        mask = causal_mask(0, 0, n_prompts + n_tokens, x.device)
        mask[:n_prompts, :n_prompts] = True  # prompts see each other, never the tokens
        for layer, kv in zip(self.layers, self._cross(encoded), strict=True):
            x, _ = layer(x, None, mask, kv)
        return self.proj(self.norm(x[:, n_prompts:]))

    def attention_length(self, n_tokens: int) -> int:
        """How many positions the last token's self-attention sees (prompts + tokens)."""
        return self.n_prompts + n_tokens
