"""The R2Gen decoder: the built-in Transformer encoder-decoder with relational memory + MCLN.

Reuses :class:`rrgbench_builtins.transformer.TransformerDecoder` for the word embedding, the visual
context encoder (pre-norm layers + final LayerNorm), sinusoidal positions, cross-attention keys and
the output projection; what changes is the decoder stack. At input position ``t`` the relational
memory has consumed the input embeddings ``x_0 .. x_t`` (word embedding + position, after dropout, as
R2Gen feeds its ``tgt_embed`` output to the RM), so the state that conditions the prediction of token
``t+1`` depends only on tokens ``<= t`` (the tokens before the one being predicted). Every decoder
sublayer normalises with MCLN conditioned on that per-position state; the final norm is a plain
LayerNorm, as in R2Gen.

One code path serves both modes: the full pass starts from the initial memory at position 0; the
incremental pass starts from the cached memory, step count and self-attention keys/values. The cache
is ``{"t": int, "cross": per-layer context keys/values, "past": per-layer self keys/values,
"memory": [B, slots, d]}`` (batch on dim 0 for every tensor), so both modes give the same logits.
Semantic embeddings from an alignment module, when a recipe adds one, enter as in the Transformer's
``add`` mode (their mean is added to every input embedding).
"""

from __future__ import annotations

from typing import Any

import torch
from rrgbench_builtins.layers import causal_mask, xavier_init
from rrgbench_builtins.schemas import TransformerDecoderOptions
from rrgbench_builtins.transformer import DecoderLayer, TransformerDecoder
from torch import nn

from rrgbench.extension.components import BuildContext
from rrgbench_r2gen.memory import ConditionalLayerNorm, RelationalMemory
from rrgbench_r2gen.schemas import R2GenDecoderOptions

KV = tuple[torch.Tensor, torch.Tensor]


class R2GenDecoderLayer(DecoderLayer):
    """The built-in pre-norm decoder layer with its three LayerNorms replaced by MCLN."""

    def __init__(self, d_model: int, heads: int, d_ff: int, dropout: float, memory_dim: int) -> None:
        super().__init__(d_model, heads, d_ff, dropout)
        self.norms = nn.ModuleList(ConditionalLayerNorm(d_model, memory_dim) for _ in range(3))

    def forward(self, x: torch.Tensor, past: KV | None, mask: torch.Tensor, cross: KV,  # type: ignore[override]
                memory: torch.Tensor) -> tuple[torch.Tensor, KV]:
        h = self.norms[0](x, memory)
        k, v = self.self_attn.project_kv(h)
        if past is not None:
            k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)
        x = x + self.drop(self.self_attn.attend(h, k, v, mask))
        x = x + self.drop(self.cross_attn.attend(self.norms[1](x, memory), *cross))
        x = x + self.drop(self.ff(self.norms[2](x, memory)))
        return x, (k, v)


def _base_options(options: R2GenDecoderOptions) -> TransformerDecoderOptions:
    return TransformerDecoderOptions(layers=options.layers, encoder_layers=options.encoder_layers,
                                     heads=options.heads, d_ff=options.d_ff, dropout=options.dropout,
                                     n_prompts=0, semantic_mode="add")


class R2GenDecoder(TransformerDecoder):
    """Transformer encoder-decoder whose decoder layers are conditioned by a relational memory."""

    def __init__(self, options: R2GenDecoderOptions, context: BuildContext) -> None:
        super().__init__(_base_options(options), context)
        d = context.d_model
        self.rm = RelationalMemory(options.rm_slots, d, options.rm_heads, options.dropout)
        self.layers = nn.ModuleList(
            R2GenDecoderLayer(d, options.heads, options.d_ff, options.dropout, self.rm.state_size)
            for _ in range(options.layers))
        xavier_init(self.layers)

    def init_cache(self, encoded: dict[str, torch.Tensor]) -> dict[str, Any]:
        memory = encoded["memory"]
        return {"t": 0, "cross": self._cross(encoded), "past": None,
                "memory": self.rm.initial(memory.shape[0], memory.device, memory.dtype)}

    def decode(self, encoded: dict[str, torch.Tensor], embeddings: torch.Tensor,
               cache: dict[str, Any] | None = None) -> tuple[torch.Tensor, dict[str, Any] | None]:
        state = cache if cache is not None else self.init_cache(encoded)
        x = self._inputs(encoded, embeddings, state["t"])
        states, memory = self.rm(x, state["memory"])
        conditions = states.flatten(2)  # [B, T, slots * d]: the memory of each position
        past = state["past"]
        n_past = 0 if past is None else past[0][0].shape[2]
        mask = causal_mask(0, n_past, x.shape[1], x.device)
        new_past = []
        for i, layer in enumerate(self.layers):
            x, kv = layer(x, None if past is None else past[i], mask, state["cross"][i], conditions)
            new_past.append(kv)
        logits = self.proj(self.norm(x))
        if cache is None:
            return logits, None
        return logits, {"t": state["t"] + embeddings.shape[1], "cross": state["cross"], "past": new_past,
                        "memory": memory}
