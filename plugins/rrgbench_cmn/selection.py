"""Which memory slots each query reads: scaled dot-product scores and their exact top-k, per head.

:func:`select_slots` scores queries ``[heads, n, d]`` against slot keys ``[heads, N_m, d]`` with one
batched matrix product per block of queries (batch = heads, so the keys are never copied per query)
and keeps the ``k`` best slots of every (head, query) row. The full score matrix never exists at once:
queries are taken in blocks whose scores fit :data:`SCORE_BLOCK` elements (at least
:data:`MIN_BLOCK_ROWS` queries, so each block's product still runs as a matrix product), which bounds
memory at large N_m and lets the selection read scores that are still in cache.

:func:`topk_rows` is an exact top-k along the last dimension. On CPU, ``torch.topk`` copies every row
into a buffer of (value, index) pairs and partially sorts it, which costs more than the scores' own
matrix product at N_m = 2,048 (``benchmarks/README.md``). For rows of at least ``16 k`` entries it
selects in two stages instead: the row is cut into ``C`` strided chunks (chunk ``c`` holds entries
``c, c + C, c + 2C, ...``; their maxima are an elementwise maximum over ``m = N / C`` contiguous
slices), the ``k`` chunks with the largest maxima are kept, and the top-k runs over their ``m k``
entries. This is exact: every one of the ``k`` largest entries lies in a chunk whose maximum is at least
as large, and at most ``k`` chunk maxima can be among the ``k`` largest entries. Values are therefore
identical to ``torch.topk``; indices differ only between exactly equal scores, where any choice is a top
k. Elsewhere (short rows, CUDA's radix selection) it calls ``torch.topk``.
"""

from __future__ import annotations

import math

import torch

SCORE_BLOCK = 2**21
"""Score elements per query block (8 MiB in float32; 128 queries at the paper's 8 heads and N_m 2,048),
small enough to stay in cache between the product and the selection that reads it."""

MIN_BLOCK_ROWS = 32
"""Fewest queries per block: smaller blocks turn the product into matrix-vector work that re-reads the keys."""

TWO_STAGE_MIN_RATIO = 16
"""Rows of at least this many times ``k`` entries use the two-stage selection on CPU."""


def topk_rows(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` largest entries of every row of ``scores`` [rows, N] (sorted, descending) and their indices."""
    rows, n = scores.shape
    if scores.device.type != "cpu" or n < TWO_STAGE_MIN_RATIO * k:
        return scores.topk(k, dim=-1)
    per_chunk = max(1, round(math.sqrt(n / k)))  # balances the two selections: C ~ per_chunk * k entries each
    chunks = n // per_chunk
    body = scores[:, : chunks * per_chunk].view(rows, per_chunk, chunks)
    kept_chunks = body.amax(dim=1).topk(k, dim=-1, sorted=False).indices  # [rows, k]
    candidates = body.gather(2, kept_chunks.unsqueeze(1).expand(rows, per_chunk, k)).view(rows, per_chunk * k)
    tail = n - chunks * per_chunk  # the last N mod per_chunk entries are always candidates
    if tail:
        candidates = torch.cat([candidates, scores[:, chunks * per_chunk:]], dim=1)
    values, position = candidates.topk(k, dim=-1)
    indices = (position // k) * chunks + kept_chunks.gather(1, position % k)
    if tail:
        indices = torch.where(position < per_chunk * k, indices, position - per_chunk * k + chunks * per_chunk)
    return values, indices


@torch.no_grad()
def select_slots(queries: torch.Tensor, keys: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k scores and slot indices [heads, n, k] of ``queries`` [heads, n, d] against ``keys`` [heads, N_m, d].

    Scores are ``queries . key`` (scale the queries beforehand). Runs without autograd: the caller
    recomputes the kept scores from the indices when gradients are needed.
    """
    heads, n, _ = queries.shape
    size = keys.shape[1]
    keys_t = keys.transpose(1, 2)
    block = max(MIN_BLOCK_ROWS, SCORE_BLOCK // max(1, heads * size))
    if n <= block:  # one block (a decoding step): no copies into the outputs
        values, index = topk_rows(torch.bmm(queries, keys_t).view(-1, size), k)
        return values.view(heads, n, k), index.view(heads, n, k)
    kept = queries.new_empty(heads, n, k)
    indices = torch.empty(heads, n, k, dtype=torch.long, device=queries.device)
    for start in range(0, n, block):
        stop = min(n, start + block)
        values, index = topk_rows(torch.bmm(queries[:, start:stop], keys_t).view(-1, size), k)
        kept[:, start:stop] = values.view(heads, stop - start, k)
        indices[:, start:stop] = index.view(heads, stop - start, k)
    return kept, indices
