"""The former dense retrieval of the ``cmn`` memory: what :mod:`rrgbench_cmn.memory` must return.

Until issue 18 :meth:`rrgbench_cmn.memory.CrossModalMemory.respond` scored every query against every
slot with a broadcast ``matmul`` ([B, heads, L, d] @ [heads, d, N_m], which copies the projected memory
once per batch row), took ``torch.topk`` of the dense scores and read the values through a dense
scattered weight matrix [B, heads, L, N_m]. It is kept here, on the same parameters, as the reference
that tests compare outputs and gradients with (``tests/test_cmn.py``, ``tests/test_mcsam.py``).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from rrgbench.extension.components import MemoryOutput


def _heads(memory: Any, x: torch.Tensor) -> torch.Tensor:
    """[..., n, D] -> [..., heads, n, d_head]."""
    return x.unflatten(-1, (memory.heads, memory.d_head)).transpose(-3, -2)


def dense_respond(memory: Any, queries: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Response R(x) [B, L, D], retrieval weights and slot indices [B, heads, L, k], computed densely."""
    keys, values = _heads(memory, memory.key(memory.matrix)), _heads(memory, memory.value(memory.matrix))
    scores = torch.matmul(_heads(memory, memory.query(queries)), keys.transpose(-1, -2)) / math.sqrt(memory.d_head)
    kept, indices = scores.topk(memory.topk, dim=-1)
    weights = torch.softmax(kept.float(), dim=-1)
    dense = scores.new_zeros(scores.shape).scatter(-1, indices, memory.drop(weights).to(scores.dtype))
    read = torch.matmul(dense, values)
    return memory.out(read.transpose(-3, -2).flatten(-2)), weights, indices


def dense_forward(memory: Any, queries: torch.Tensor, mask: torch.Tensor | None = None) -> MemoryOutput:
    """The memory's forward pass (consolidation ``x + R(x)``, zero response on padding) on the dense retrieval."""
    response, weights, indices = dense_respond(memory, queries)
    if mask is not None:
        response = response * mask.unsqueeze(-1).to(response.dtype)
    return MemoryOutput(consolidated=queries + response, retrieved=response, scores=weights, indices=indices,
                        mask=mask)
