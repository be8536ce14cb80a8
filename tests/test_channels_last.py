"""``encoder.channels_last``: the same features and gradients as the default layout, weights in channels_last
through training and checkpoint loading, and the ``small`` profile keeping the default layout."""

from __future__ import annotations

import torch
from rrgbench_builtins.encoders import TimmEncoder
from rrgbench_builtins.schemas import TimmEncoderOptions

from rrgbench.config import resolve_config
from rrgbench.extension.components import BuildContext
from rrgbench.extension.plugins import registry

CONTEXT = BuildContext(d_model=16, vocab_size=10, pad_id=0, bos_id=1, eos_id=2, max_len=8, n_views=2, image_size=64)
CL = torch.channels_last


def encoders() -> tuple[TimmEncoder, TimmEncoder]:
    torch.manual_seed(0)
    plain = TimmEncoder(TimmEncoderOptions(backbone="resnet18", channels_last=False, dropout=0.0), CONTEXT)
    fast = TimmEncoder(TimmEncoderOptions(backbone="resnet18", channels_last=True, dropout=0.0), CONTEXT)
    fast.load_state_dict(plain.state_dict())
    return plain, fast


def conv_weights(encoder: TimmEncoder) -> list[torch.Tensor]:
    return [p for p in encoder.backbone.parameters() if p.dim() == 4]


def test_same_features_and_gradients_as_the_default_layout():
    plain, fast = encoders()
    assert all(w.is_contiguous(memory_format=CL) for w in conv_weights(fast))
    assert sum(not w.is_contiguous() for w in conv_weights(fast)) > 10  # every kernel larger than 1 x 1
    assert all(w.is_contiguous() for w in conv_weights(plain))
    images = torch.randn(3, 2, 3, 64, 64)
    outputs = []
    for encoder in (plain, fast):
        features = encoder(images)
        (features.tokens.square().mean() + features.pooled.sum()).backward()
        outputs.append((features.tokens, [p.grad for p in encoder.parameters()]))
    torch.testing.assert_close(outputs[1][0], outputs[0][0], atol=1e-5, rtol=1e-4)
    for fast_grad, plain_grad in zip(outputs[1][1], outputs[0][1], strict=True):
        torch.testing.assert_close(fast_grad, plain_grad, atol=1e-5, rtol=1e-4)


def test_layout_survives_an_optimizer_step_and_loading_a_checkpoint():
    plain, fast = encoders()
    optimizer = torch.optim.Adam(fast.parameters(), lr=1e-3, foreach=True)
    fast(torch.randn(2, 2, 3, 64, 64)).tokens.mean().backward()
    optimizer.step()
    fast.load_state_dict(plain.state_dict())  # a checkpoint written in the default layout
    assert all(w.is_contiguous(memory_format=CL) for w in conv_weights(fast))
    assert all(torch.equal(a, b) for a, b in zip(conv_weights(fast), conv_weights(plain), strict=True))


def test_paper_profile_uses_channels_last_and_small_keeps_the_default_layout():
    assert resolve_config(registry(), "mcsam", "iu-xray", profile="paper").encoder.channels_last
    assert not resolve_config(registry(), "mcsam", "synthetic").encoder.channels_last
