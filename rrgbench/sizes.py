"""The memory a configuration asks for, estimated before anything is built, and the cap over which it is refused.

Option bounds (``option(..., max=...)``) refuse one absurd value; :func:`check_memory` refuses an absurd
combination of sizes that are each allowed. The estimate counts the weights a configuration names by size,
at 16 bytes per value while training (float32 weights, their gradients and Adam's two moments, 4 bytes each):

* the memory bank: ``memory.size x model.d_model`` values (a memory with a ``size`` option);
* every Transformer layer of the decoder component (``decoder.layers + decoder.encoder_layers``, a decoder
  with a ``d_ff`` option): ``4 d^2`` attention projections plus ``2 d d_ff`` feed-forward weights.

It is a lower bound (embeddings, the image backbone and activations come on top), so a configuration over
:data:`MAX_BYTES` could never train on one accelerator of today's sizes and is refused with the estimate.
"""

from __future__ import annotations

from typing import Any

from rrgbench.errors import ConfigError

BYTES_PER_VALUE = 16
MAX_BYTES = 16 * 2**30


def estimated_terms(config: Any) -> dict[str, int]:
    """Values per named weight group (see the module docstring), from a resolved RunConfig."""
    d = config.model_options.d_model
    terms: dict[str, int] = {}
    size = getattr(config.memory, "size", None)
    if isinstance(size, int):
        terms[f"memory.size {size:,} x model.d_model {d:,}"] = size * d
    decoder = config.decoder
    d_ff = getattr(decoder, "d_ff", None)
    layers = int(getattr(decoder, "layers", 0) or 0) + int(getattr(decoder, "encoder_layers", 0) or 0)
    if isinstance(d_ff, int) and layers:
        terms[f"{layers} Transformer layers of width {d:,} (d_ff {d_ff:,})"] = layers * (4 * d * d + 2 * d * d_ff)
    return terms


def human(n_bytes: float) -> str:
    """``17179869184`` -> ``16.0 GiB`` (the sizes it says are at or over :data:`MAX_BYTES`)."""
    return f"{n_bytes / 2**30:.1f} GiB"


def check_memory(config: Any) -> None:
    """Refuse a configuration whose estimated training memory is over :data:`MAX_BYTES`, saying the estimate."""
    terms = estimated_terms(config)
    total = sum(terms.values()) * BYTES_PER_VALUE
    if total > MAX_BYTES:
        largest = max(terms, key=terms.__getitem__)
        raise ConfigError(f"{config.model}: its weights alone need an estimated {human(total)} ({total:,} bytes; "
                          f"largest: {largest}; {BYTES_PER_VALUE} bytes a value for weights, gradients and Adam "
                          f"moments), over the {human(MAX_BYTES)} cap: use smaller sizes")
