"""Decoding: greedy and batched beam search on the model's incremental step with a cache.

Both work on a whole batch at once: beam search keeps ``[B, K]`` hypotheses, expands the
decoder's encoded state and cache to ``B*K`` rows once and reorders them with one
``index_select`` per step; there is no per-sample Python loop in the step. A finished hypothesis
only extends with ``eos`` at no cost, so its score stays fixed. Scores are summed log-probabilities
(optionally divided by ``length ** length_penalty``); beam size 1 is exactly greedy decoding.
"""

from __future__ import annotations

from typing import Protocol

import torch

from rrgbench.components import index_batch


class Steppable(Protocol):
    def prepare(self, images: torch.Tensor) -> dict[str, torch.Tensor]: ...
    def step(self, encoded: dict[str, torch.Tensor], tokens: torch.Tensor, cache: object) -> tuple: ...

    decoder: torch.nn.Module


def _strip(rows: torch.Tensor, eos_id: int) -> list[list[int]]:
    out = []
    for row in rows.tolist():
        out.append(row[: row.index(eos_id)] if eos_id in row else row)
    return out


@torch.no_grad()
def greedy(model: Steppable, encoded: dict[str, torch.Tensor], max_len: int, bos_id: int, eos_id: int) -> list[list[int]]:
    """Most probable token at each step, for every study in the batch."""
    batch = next(iter(encoded.values())).shape[0]
    device = next(iter(encoded.values())).device
    cache = model.decoder.init_cache(encoded)
    tokens = torch.full((batch,), bos_id, dtype=torch.long, device=device)
    finished = torch.zeros(batch, dtype=torch.bool, device=device)
    steps = []
    for _ in range(max_len):
        logits, cache = model.step(encoded, tokens, cache)
        tokens = logits.argmax(dim=-1).masked_fill(finished, eos_id)
        steps.append(tokens)
        finished |= tokens == eos_id
        if bool(finished.all()):
            break
    return _strip(torch.stack(steps, dim=1), eos_id)


@torch.no_grad()
def beam_search(model: Steppable, encoded: dict[str, torch.Tensor], beam_size: int, max_len: int, bos_id: int,
                eos_id: int, length_penalty: float = 0.0) -> list[list[int]]:
    """Batched beam search; returns the best hypothesis per study (tokens after bos, before eos)."""
    first = next(iter(encoded.values()))
    batch, device, k = first.shape[0], first.device, beam_size
    expand = torch.arange(batch, device=device).repeat_interleave(k)
    cache = index_batch(model.decoder.init_cache(encoded), expand)
    encoded = index_batch(encoded, expand)
    scores = torch.full((batch, k), float("-inf"), device=device)
    scores[:, 0] = 0.0
    sequences = torch.full((batch, k, 0), eos_id, dtype=torch.long, device=device)
    tokens = torch.full((batch * k,), bos_id, dtype=torch.long, device=device)
    finished = torch.zeros(batch, k, dtype=torch.bool, device=device)
    lengths = torch.zeros(batch, k, device=device)
    for _ in range(max_len):
        logits, cache = model.step(encoded, tokens, cache)
        logp = torch.log_softmax(logits.float(), dim=-1).view(batch, k, -1)
        vocab = logp.shape[-1]
        eos_only = torch.full_like(logp[0, 0], float("-inf"))
        eos_only[eos_id] = 0.0
        logp = torch.where(finished[..., None], eos_only, logp)
        flat = (scores[..., None] + logp).view(batch, k * vocab)
        scores, choice = flat.topk(k, dim=-1)
        beam, token = choice // vocab, choice % vocab
        sequences = torch.cat([sequences.gather(1, beam[..., None].expand_as(sequences)), token[..., None]], dim=2)
        was_finished = finished.gather(1, beam)
        lengths = lengths.gather(1, beam) + (~was_finished).float()
        finished = was_finished | (token == eos_id)
        rows = (beam + torch.arange(batch, device=device)[:, None] * k).view(-1)
        cache = index_batch(cache, rows)
        tokens = token.view(-1)
        if bool(finished.all()):
            break
    final = scores / lengths.clamp(min=1) ** length_penalty if length_penalty else scores
    best = final.argmax(dim=1)
    chosen = sequences[torch.arange(batch, device=device), best]
    return _strip(chosen, eos_id)


def generate(model: Steppable, images: torch.Tensor, method: str, beam_size: int, max_len: int, bos_id: int,
             eos_id: int) -> list[list[int]]:
    """Decode a batch of images with the configured method."""
    encoded = model.prepare(images)
    if method == "greedy" or beam_size == 1:
        return greedy(model, encoded, max_len, bos_id, eos_id)
    return beam_search(model, encoded, beam_size, max_len, bos_id, eos_id)
