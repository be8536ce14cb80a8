"""The decoder's input for every vocabulary token, computed once while the weights stay the same.

During incremental decoding a model feeds one token per hypothesis per step; with a memory that
consolidates text (R2GenCMN's ``cmn``, MCSAM's ``clinical-memory``) that input is
``embed(token) + R(embed(token))``: a top-k retrieval over all N_m slots per hypothesis per step, the
memory's whole cost in decoding. When the memory is *position-wise* (its response at a position depends
only on the query at that position: :attr:`rrgbench.extension.components.Memory.position_wise`) and
nothing is random (eval mode, no autograd), that input depends on the token id alone. A
:class:`TokenTable` then computes it once for the whole vocabulary, a ``[V, D]`` table, and a step is a
row lookup. The table is recomputed whenever anything it was computed from may have changed: any
parameter or buffer of the given modules (identity, storage, dtype and in-place version counter, so an
optimiser step or ``load_state_dict`` invalidates it), the device, or the autocast / inference mode.

Each row is the same function of the same token as the uncached path; only the batch the rows are
computed in differs, so values agree to float rounding (``tests/test_token_table.py`` checks tokens and
logits against the uncached path).

Checking the stamp walks every parameter of the modules, so it is done once per decoded batch
(:meth:`TokenTable.refresh`, from :meth:`rrgbench.model.ReportGenerator.prepare`), not once per step: the
weights cannot change between the steps of one ``generate()``; a step only indexes the table (:meth:`TokenTable.rows`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from itertools import chain

import torch
from torch import nn


def weights_stamp(modules: Iterable[nn.Module]) -> tuple:
    """What a cached function of these modules' weights depends on (changes whenever a tensor does)."""
    tensors = chain.from_iterable(chain(m.parameters(), m.buffers()) for m in modules)
    modes = (*(_autocast_state(device) for device in ("cpu", "cuda")), torch.is_inference_mode_enabled())
    return (*modes, *((id(t), t.device, t.dtype, t.data_ptr(), t._version) for t in tensors))


def _autocast_state(device: str) -> tuple[bool, torch.dtype | None]:
    enabled = torch.is_autocast_enabled(device)
    return enabled, torch.get_autocast_dtype(device) if enabled else None


class TokenTable:
    """A ``[V, D]`` table of per-token inputs, rebuilt by :meth:`refresh` when :func:`weights_stamp` of its
    modules changed."""

    def __init__(self) -> None:
        self._stamp: tuple | None = None
        self._table: torch.Tensor | None = None

    @property
    def built(self) -> bool:
        return self._table is not None

    def refresh(self, modules: Iterable[nn.Module], compute: Callable[[], torch.Tensor]) -> None:
        """(Re)build the table with ``compute()`` unless it was built from the weights and modes ``modules`` have
        now; once before a batch's steps."""
        stamp = weights_stamp(modules)
        if self._table is None or stamp != self._stamp:
            self._table, self._stamp = compute(), stamp

    def rows(self, tokens: torch.Tensor) -> torch.Tensor:
        """Rows ``[B, D]`` for ``tokens`` [B] of the table as last refreshed."""
        assert self._table is not None, "TokenTable.refresh comes first"
        return self._table.index_select(0, tokens)
