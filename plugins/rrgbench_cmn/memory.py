"""The R2GenCMN cross-modal memory (Chen et al., ACL 2021): the ``cmn`` memory component.

One memory matrix ``M`` [N_m, D] (``memory.size`` x ``model.d_model``) is shared by both modalities
(``applies_to = ("visual", "text")``), and so are the four projections around it. Querying and
responding, per head ``h`` (``memory.heads``, head width ``d = D / heads``)::

    q = W_q x,   k_j = W_k m_j,   v_j = W_v m_j                 (split into heads)
    s_j = q . k_j / sqrt(d)                                      for every slot j
    S = top-k(s)  (``memory.topk`` slots per head and query)
    w = softmax(s_S)                                             over the kept scores only
    R(x) = W_o concat_h( sum_{j in S} w_j v_j )
    consolidated = x + R(x)                                      on visual tokens and word embeddings

Every query position is answered independently, so text padding cannot influence real positions;
padded positions (``mask`` False) get a zero response and keep their embedding unchanged. The memory is
therefore ``position_wise``: during decoding the model computes the text response once per vocabulary
token instead of once per hypothesis and step (:mod:`rrgbench.token_table`).

Initialisation follows the authors' code: ``M ~ N(0, std = 1/D)`` (``nn.init.normal_(M, 0, 1/cmm_dim)``;
note the standard deviation is 1/D, not 1/sqrt(D)). Subclasses (MCSAM's clinical memory) replace it
through :meth:`CrossModalMemory.reset_matrix` / :meth:`CrossModalMemory.load_matrix`.

Retrieval costs a small multiple of the scores' own matrix product (``benchmarks/README.md`` gives the
ratio per N_m): the scores are one batched product over heads (:func:`rrgbench_cmn.selection.select_slots`,
in blocks of queries, without autograd), the top-k is exact (two-stage on CPU, see that module), and the
response reads only the kept values (``embedding_bag`` with the weights as per-sample weights): no
[.., N_m] weight matrix is built and the projected memory is never copied per query. With autograd on,
the kept scores are recomputed from the selected keys, so gradients reach ``q``, ``W_k`` and the kept
slots of ``M`` exactly as through a dense score matrix (tests compare both with the former dense
implementation, ``benchmarks/reference_retrieval.py``). When autograd is off (decoding), the projected
keys and values of all slots are cached and reused until ``M`` or the key/value projections change
(checked through the tensors' version counters), so an incremental decoding step does not re-project the
whole memory.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from rrgbench.errors import ConfigError
from rrgbench.extension.components import MODALITIES, BuildContext, Memory, MemoryOutput
from rrgbench_cmn.selection import select_slots


def check_memory_options(size: int, topk: int, heads: int, d_model: int) -> None:
    """Refuse shapes the retrieval cannot run with, naming the options to change."""
    if topk > size:
        raise ConfigError(f"memory.topk ({topk}) must not exceed memory.size ({size})")
    if d_model % heads:
        raise ConfigError(f"model.d_model ({d_model}) must be divisible by memory.heads ({heads})")


class CrossModalMemory(Memory):
    """Shared memory matrix with multi-head top-k querying and ``X + R(X)`` consolidation."""

    applies_to = ("visual", "text")
    position_wise = True

    def __init__(self, options: Any, context: BuildContext) -> None:
        super().__init__()
        d_model = context.d_model
        check_memory_options(options.size, options.topk, options.heads, d_model)
        self.d_model, self.size, self.topk, self.heads = d_model, options.size, options.topk, options.heads
        self.d_head = d_model // options.heads
        self.matrix = nn.Parameter(torch.empty(options.size, d_model))
        self.query = nn.Linear(d_model, d_model)
        self.key = nn.Linear(d_model, d_model)
        self.value = nn.Linear(d_model, d_model)
        self.out = nn.Linear(d_model, d_model)
        self.drop = nn.Dropout(options.dropout)
        self._slot_cache: tuple[tuple, tuple[torch.Tensor, torch.Tensor]] | None = None
        self.reset_matrix()

    # -- the memory matrix --------------------------------------------------------------------
    def memory_size(self) -> int:
        return self.size

    @property
    def init_std(self) -> float:
        """Standard deviation of R2GenCMN's random initialisation: 1 / D."""
        return 1.0 / self.d_model

    @torch.no_grad()
    def reset_matrix(self) -> None:
        nn.init.normal_(self.matrix, 0.0, self.init_std)

    @torch.no_grad()
    def load_matrix(self, values: torch.Tensor) -> None:
        """Overwrite ``M`` in place (keeps the parameter object, so optimisers still hold it)."""
        if values.shape != self.matrix.shape:
            raise ValueError(f"memory matrix must be {tuple(self.matrix.shape)}, got {tuple(values.shape)}")
        self.matrix.copy_(values.to(self.matrix.device, self.matrix.dtype))

    # -- querying and responding --------------------------------------------------------------
    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        """[..., D] -> [heads, n, d_head] (contiguous; n = every position of the leading dimensions)."""
        return x.reshape(-1, self.heads, self.d_head).transpose(0, 1).contiguous()

    def _batch_layout(self, x: torch.Tensor, queries: torch.Tensor) -> torch.Tensor:
        """[heads, n, j] -> [*lead, heads, L, j] for ``queries`` [*lead, L, D] (contiguous)."""
        *lead, length, _ = queries.shape
        grouped = x.view(self.heads, -1, length, x.shape[-1]).transpose(0, 1)
        return grouped.reshape(*lead, self.heads, length, x.shape[-1]).contiguous()

    def _head_layout(self, x: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`_batch_layout`: [*lead, heads, L, j] -> [heads, n, j]."""
        grouped = x.reshape(-1, self.heads, x.shape[-2], x.shape[-1]).transpose(0, 1)
        return grouped.reshape(self.heads, -1, x.shape[-1])

    def slots(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values of every slot per head, [heads, N_m, d_head] each (cached without autograd)."""
        if torch.is_grad_enabled():
            self._slot_cache = None
            return self._project_slots()
        stamp = self._slot_stamp()
        if self._slot_cache is None or self._slot_cache[0] != stamp:
            self._slot_cache = (stamp, self._project_slots())
        return self._slot_cache[1]

    def _project_slots(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self._heads(self.key(self.matrix)), self._heads(self.value(self.matrix))

    def _slot_stamp(self) -> tuple:
        tensors = (self.matrix, self.key.weight, self.key.bias, self.value.weight, self.value.bias)
        modes = (torch.is_autocast_enabled(), torch.is_inference_mode_enabled())
        return (*modes, *((t.device, t.data_ptr(), t._version) for t in tensors))

    def scaled_queries(self, queries: torch.Tensor) -> torch.Tensor:
        """``W_q x / sqrt(d_head)`` per head: [heads, n, d_head]."""
        return self._heads(self.query(queries)) * self.d_head**-0.5

    def similarity(self, queries: torch.Tensor) -> torch.Tensor:
        """Scaled dot products of every query with every slot, per head: [B, heads, L, N_m] (dense; for inspection)."""
        keys = self.slots()[0]
        return self._batch_layout(torch.bmm(self.scaled_queries(queries), keys.transpose(1, 2)), queries)

    def _flat_slots(self, indices: torch.Tensor) -> torch.Tensor:
        """Slot indices [heads, n, k] -> rows of the head-stacked [heads * N_m, d_head] keys or values."""
        return indices + torch.arange(self.heads, device=indices.device).view(-1, 1, 1) * self.size

    def respond(self, queries: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Response R(x) [B, L, D], retrieval weights and slot indices [B, heads, L, k]."""
        keys, values = self.slots()
        q = self.scaled_queries(queries)
        kept, indices = select_slots(q, keys, self.topk)
        rows = self._flat_slots(indices)
        if torch.is_grad_enabled() and (q.requires_grad or keys.requires_grad):
            chosen = keys.reshape(-1, self.d_head)[rows]  # [heads, n, k, d_head]
            kept = torch.matmul(chosen, q.unsqueeze(-1)).squeeze(-1)  # the same scores, now with autograd
        weights = self._batch_layout(torch.softmax(kept.float(), dim=-1), queries)
        dropped = self._head_layout(self.drop(weights)).to(values.dtype)  # dropout in [B, heads, L, k] order
        read = F.embedding_bag(rows.view(-1, self.topk), values.reshape(-1, self.d_head), mode="sum",
                               per_sample_weights=dropped.reshape(-1, self.topk))  # [heads * n, d_head]
        response = self.out(read.view(self.heads, -1, self.d_head).transpose(0, 1).reshape(queries.shape))
        return response, weights, self._batch_layout(indices, queries)

    def forward(self, queries: torch.Tensor, modality: str, mask: torch.Tensor | None = None) -> MemoryOutput:
        if modality not in MODALITIES:
            raise ValueError(f"modality must be one of {MODALITIES}, got {modality!r}")
        response, weights, indices = self.respond(queries)
        if mask is not None:
            response = response * mask.unsqueeze(-1).to(response.dtype)
        return MemoryOutput(consolidated=queries + response, retrieved=response, scores=weights, indices=indices,
                            mask=mask)
