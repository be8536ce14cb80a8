"""Decoding: greedy and batched beam search on the model's incremental step with a cache.

Both work on a whole batch at once: beam search keeps ``[B, K]`` hypotheses, expands the
decoder's encoded state and cache to ``B*K`` rows once and reorders the cache with one
``index_select`` per tensor per step; there is no per-sample Python loop in the step. A finished
hypothesis only extends with ``eos`` at no cost, so its score stays fixed. Scores are summed
log-probabilities (optionally divided by ``length ** length_penalty``); beam size 1 is exactly
greedy decoding.

Hot-path choices (the output is token for token that of recomputing the whole prefix every step,
see ``benchmarks/reference_decoding.py``):

* cache tensors that a step hands back untouched since the initial expansion (the same object, its
  in-place version counter unchanged: e.g. the Transformer's cross-attention keys/values) are
  identical across the beams of one study, so reordering them would copy them for nothing; they are
  kept as they are (:class:`_Reorderer`);
* hypotheses are stored as per-step tokens and parent pointers and traced back once at the end,
  instead of gathering and concatenating the whole ``[B, K, t]`` history every step.
"""

from __future__ import annotations

from typing import Any, Protocol

import torch

from rrgbench.extension.components import index_batch


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
def greedy(model: Steppable, encoded: dict[str, torch.Tensor], max_len: int, bos_id: int,
           eos_id: int) -> list[list[int]]:
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


class _Reorderer:
    """Reorders a beam cache along dimension 0, skipping tensors still as they were after expansion.

    A tensor of the expanded initial cache holds the same values for every beam of a study, so any
    reordering *within* a study (all beam search does) leaves it unchanged. It is skipped as long as
    the decoder returns that very object with its version counter (bumped by in-place writes)
    unchanged; anything new or modified is reordered.
    """

    def __init__(self, expanded_cache: Any) -> None:
        self.static: dict[int, tuple[torch.Tensor, int]] = {}
        self._collect(expanded_cache)

    def _collect(self, state: Any) -> None:
        if isinstance(state, torch.Tensor):
            self.static[id(state)] = (state, state._version)
        elif isinstance(state, dict):
            for value in state.values():
                self._collect(value)
        elif isinstance(state, (list, tuple)):
            for value in state:
                self._collect(value)

    def is_static(self, tensor: torch.Tensor) -> bool:
        entry = self.static.get(id(tensor))
        return entry is not None and entry[0] is tensor and tensor._version == entry[1]

    def __call__(self, state: Any, index: torch.Tensor) -> Any:
        if isinstance(state, torch.Tensor):
            return state if self.is_static(state) else state.index_select(0, index)
        if isinstance(state, dict):
            return {key: self(value, index) for key, value in state.items()}
        if isinstance(state, (list, tuple)):
            return type(state)(self(value, index) for value in state)
        return state


def _trace_back(tokens: list[torch.Tensor], parents: list[torch.Tensor], best: torch.Tensor) -> torch.Tensor:
    """Token sequences [B, T] of the beams ``best`` [B], following the parent pointers backwards."""
    beam, out = best, []
    for token, parent in zip(reversed(tokens), reversed(parents), strict=True):
        out.append(token.gather(1, beam[:, None]))
        beam = parent.gather(1, beam[:, None]).squeeze(1)
    return torch.cat(out[::-1], dim=1) if out else best.new_zeros(best.shape[0], 0)


@torch.no_grad()
def beam_search(model: Steppable, encoded: dict[str, torch.Tensor], beam_size: int, max_len: int, bos_id: int,
                eos_id: int, length_penalty: float = 0.0) -> list[list[int]]:
    """Batched beam search; returns the best hypothesis per study (tokens after bos, before eos)."""
    first = next(iter(encoded.values()))
    batch, device, k = first.shape[0], first.device, beam_size
    expand = torch.arange(batch, device=device).repeat_interleave(k)
    cache = index_batch(model.decoder.init_cache(encoded), expand)
    reorder = _Reorderer(cache)
    encoded = index_batch(encoded, expand)
    offsets = torch.arange(batch, device=device)[:, None] * k
    scores = torch.full((batch, k), float("-inf"), device=device)
    scores[:, 0] = 0.0
    tokens = torch.full((batch * k,), bos_id, dtype=torch.long, device=device)
    finished = torch.zeros(batch, k, dtype=torch.bool, device=device)
    lengths = torch.zeros(batch, k, device=device)
    eos_only: torch.Tensor | None = None
    history: list[torch.Tensor] = []
    parents: list[torch.Tensor] = []
    for _ in range(max_len):
        logits, cache = model.step(encoded, tokens, cache)
        logp = torch.log_softmax(logits.float(), dim=-1).view(batch, k, -1)
        vocab = logp.shape[-1]
        if eos_only is None:
            eos_only = torch.full((vocab,), float("-inf"), device=device)
            eos_only[eos_id] = 0.0
        logp = torch.where(finished[..., None], eos_only, logp)
        scores, choice = (scores[..., None] + logp).view(batch, k * vocab).topk(k, dim=-1)
        beam, token = choice // vocab, choice % vocab
        history.append(token)
        parents.append(beam)
        was_finished = finished.gather(1, beam)
        lengths = lengths.gather(1, beam) + (~was_finished).float()
        finished = was_finished | (token == eos_id)
        cache = reorder(cache, (beam + offsets).view(-1))
        tokens = token.view(-1)
        if bool(finished.all()):
            break
    final = scores / lengths.clamp(min=1) ** length_penalty if length_penalty else scores
    return _strip(_trace_back(history, parents, final.argmax(dim=1)), eos_id)


@torch.no_grad()
def generate(model: Steppable, images: torch.Tensor, method: str, beam_size: int, max_len: int, bos_id: int,
             eos_id: int) -> list[list[int]]:
    """Decode a batch of images with the configured method (no autograd: the image side records no graph)."""
    encoded = model.prepare(images)
    if method == "greedy" or beam_size == 1:
        return greedy(model, encoded, max_len, bos_id, eos_id)
    return beam_search(model, encoded, beam_size, max_len, bos_id, eos_id)
