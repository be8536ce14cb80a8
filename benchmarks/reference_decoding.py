"""Reference decoders that recompute the whole prefix at every step (no incremental cache).

They define what :mod:`rrgbench.decode` must return, token for token, and are the baseline its
benchmark beats: at step ``t`` the decoder's full (teacher-forced) pass runs over ``bos y_1 .. y_t``
and only the last position's logits are used, so one step costs O(t) decoder positions instead of
one. The beam bookkeeping (scores, finished hypotheses extending with ``eos`` at no cost, top-k over
``beam x vocab``) is written independently of :func:`rrgbench.decode.beam_search` but follows the same
rules, so both must choose the same tokens.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from rrgbench.extension.components import index_batch


def _strip(rows: list[list[int]], eos_id: int) -> list[list[int]]:
    return [row[: row.index(eos_id)] if eos_id in row else row for row in rows]


def _last_logits(model: Any, encoded: dict[str, torch.Tensor], prefix: torch.Tensor) -> torch.Tensor:
    """Logits [N, vocab] after ``prefix`` [N, t] from a full decoder pass (no cache)."""
    embeddings, _ = model.embed_text(prefix)
    logits, _ = model.decoder.decode(encoded, embeddings)
    return logits[:, -1]


@torch.no_grad()
def greedy_recompute(model: Any, encoded: dict[str, torch.Tensor], max_len: int, bos_id: int,
                     eos_id: int) -> list[list[int]]:
    """Greedy decoding, recomputing the full prefix every step."""
    first = next(iter(encoded.values()))
    prefix = torch.full((first.shape[0], 1), bos_id, dtype=torch.long, device=first.device)
    finished = torch.zeros(first.shape[0], dtype=torch.bool, device=first.device)
    for _ in range(max_len):
        token = _last_logits(model, encoded, prefix).argmax(-1).masked_fill(finished, eos_id)
        prefix = torch.cat([prefix, token[:, None]], dim=1)
        finished |= token == eos_id
        if bool(finished.all()):
            break
    return _strip(prefix[:, 1:].tolist(), eos_id)


@torch.no_grad()
def beam_search_recompute(model: Any, encoded: dict[str, torch.Tensor], beam_size: int, max_len: int,
                          bos_id: int, eos_id: int) -> list[list[int]]:
    """Batched beam search, recomputing the full prefix of every hypothesis every step."""
    first = next(iter(encoded.values()))
    batch, k, device = first.shape[0], beam_size, first.device
    encoded = index_batch(encoded, torch.arange(batch, device=device).repeat_interleave(k))
    prefix = torch.full((batch * k, 1), bos_id, dtype=torch.long, device=device)
    scores = torch.full((batch, k), float("-inf"), device=device)
    scores[:, 0] = 0.0
    finished = torch.zeros(batch, k, dtype=torch.bool, device=device)
    for _ in range(max_len):
        logp = torch.log_softmax(_last_logits(model, encoded, prefix).float(), dim=-1).view(batch, k, -1)
        vocab = logp.shape[-1]
        only_eos = torch.full((vocab,), float("-inf"), device=device)
        only_eos[eos_id] = 0.0
        logp = torch.where(finished[..., None], only_eos, logp)
        scores, choice = (scores[..., None] + logp).view(batch, k * vocab).topk(k, dim=-1)
        parent, token = choice // vocab, choice % vocab
        rows = (parent + torch.arange(batch, device=device)[:, None] * k).view(-1)
        prefix = torch.cat([prefix[rows], token.view(-1, 1)], dim=1)
        finished = finished.gather(1, parent) | (token == eos_id)
        if bool(finished.all()):
            break
    best = scores.argmax(dim=1) + torch.arange(batch, device=device) * k
    return _strip(prefix[best, 1:].tolist(), eos_id)


class LogitEdit:
    """Wraps a model so that ``edit(logits, positions)`` changes its logits in the cached step and in the full
    pass alike (``positions``: the input position of each logit row, 0 for the token after ``bos``).

    It counts the calls: ``steps`` (incremental steps, what :mod:`rrgbench.decode` runs) and ``passes``
    (full decoder passes, what the reference decoders run once per step), so tests can check that both
    decoders stop after the same number of steps.
    """

    def __init__(self, model: Any, edit: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
        self.model, self.steps = model, 0
        self.decoder = _EditedDecoder(model.decoder, edit)

    @property
    def passes(self) -> int:
        return self.decoder.passes

    def prepare(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.model.prepare(images)

    def step(self, encoded: dict[str, torch.Tensor], tokens: torch.Tensor, cache: Any) -> tuple[torch.Tensor, Any]:
        self.steps += 1
        logits, cache = self.model.step(encoded, tokens, cache)
        position = torch.tensor([self.decoder.position], device=logits.device)
        self.decoder.position += 1
        return self.decoder.edit(logits[:, None], position)[:, 0], cache

    def embed_text(self, ids: torch.Tensor) -> Any:
        return self.model.embed_text(ids)


class _EditedDecoder:
    def __init__(self, decoder: Any, edit: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
        self.decoder, self.edit, self.passes, self.position = decoder, edit, 0, 0

    def init_cache(self, encoded: dict[str, torch.Tensor]) -> Any:
        self.position = 0
        return self.decoder.init_cache(encoded)

    def decode(self, encoded: dict[str, torch.Tensor], embeddings: torch.Tensor, cache: Any = None) -> Any:
        if cache is not None:  # an incremental call made through ``step`` is edited there
            return self.decoder.decode(encoded, embeddings, cache)
        self.passes += 1
        logits, _ = self.decoder.decode(encoded, embeddings, cache)
        return self.edit(logits, torch.arange(logits.shape[1], device=logits.device)), None


def _eos_shift(logits: torch.Tensor, eos_id: int, shift: torch.Tensor) -> torch.Tensor:
    """``logits`` [N, T, vocab] with ``shift`` [T] added to the ``eos`` column."""
    column = torch.zeros(logits.shape[-1], dtype=logits.dtype, device=logits.device)
    column[eos_id] = 1.0
    return logits + shift.to(logits.dtype)[:, None] * column


class NoEos(LogitEdit):
    """``eos`` is never chosen: every hypothesis runs exactly ``max_len`` steps.

    Used to benchmark decoding at a fixed length (an untrained model would stop at random points).
    """

    def __init__(self, model: Any, eos_id: int) -> None:
        super().__init__(model, lambda logits, positions: logits.index_fill(
            -1, torch.tensor([eos_id], device=logits.device), float("-inf")))


class RisingEos(LogitEdit):
    """``slope * position`` is added to the ``eos`` logit, so that an untrained model's hypotheses end after
    a few steps, each when its own gap to ``eos`` is closed: finished hypotheses and the early exit are then
    exercised."""

    def __init__(self, model: Any, eos_id: int, slope: float) -> None:
        super().__init__(model, lambda logits, positions: _eos_shift(logits, eos_id, slope * positions.float()))
