"""The timm encoder: random init by default, local weights files (never downloads), multi-view tokens."""

from __future__ import annotations

import pytest
import torch
from rrgbench_builtins.encoders import TimmEncoder, create_backbone
from rrgbench_builtins.schemas import TimmEncoderOptions

from rrgbench.errors import ConfigError
from rrgbench.extension.components import BuildContext

CONTEXT = BuildContext(d_model=16, vocab_size=10, pad_id=0, bos_id=1, eos_id=2, max_len=8, n_views=2, image_size=64)


def _stand_in(path, prefix=""):
    torch.manual_seed(123)
    backbone = create_backbone("resnet18")
    state = {prefix + k: v for k, v in backbone.state_dict().items()}
    return backbone, state


@pytest.mark.parametrize("fmt", ["pth-wrapped", "safetensors"])
def test_local_weights_are_loaded(tmp_path, fmt):
    reference, state = _stand_in(tmp_path, prefix="module.")
    if fmt == "safetensors":
        from safetensors.torch import save_file

        path = tmp_path / "w.safetensors"
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    else:
        path = tmp_path / "w.pth"
        torch.save({"state_dict": state}, path)
    encoder = TimmEncoder(TimmEncoderOptions(backbone="resnet18", weights=str(path)), CONTEXT)
    assert encoder.weights_report["loaded"] == len(reference.state_dict())
    for key, value in reference.state_dict().items():
        assert torch.equal(encoder.backbone.state_dict()[key], value), key


def test_random_init_without_weights_differs(tmp_path):
    reference, _ = _stand_in(tmp_path)
    encoder = TimmEncoder(TimmEncoderOptions(backbone="resnet18"), CONTEXT)
    assert not torch.equal(encoder.backbone.conv1.weight, reference.conv1.weight)


def test_unmatched_or_missing_weights_are_errors(tmp_path):
    torch.save({"unrelated.weight": torch.ones(2)}, tmp_path / "bad.pth")
    with pytest.raises(ConfigError, match="no tensor"):
        TimmEncoder(TimmEncoderOptions(backbone="resnet18", weights=str(tmp_path / "bad.pth")), CONTEXT)
    with pytest.raises(ConfigError, match="file not found"):
        TimmEncoder(TimmEncoderOptions(backbone="resnet18", weights=str(tmp_path / "none.pth")), CONTEXT)


def test_unknown_backbone_suggests():
    with pytest.raises(ConfigError, match="did you mean 'resnet18'"):
        create_backbone("resnet-18")


def test_views_are_concatenated_with_their_own_positions():
    encoder = TimmEncoder(TimmEncoderOptions(backbone="resnet18", dropout=0.0), CONTEXT).eval()
    image = torch.randn(1, 1, 3, 64, 64)
    with torch.no_grad():
        torch.nn.init.normal_(encoder.position)
        both = encoder(torch.cat([image, image], dim=1))
    grid = encoder.grid
    assert both.tokens.shape == (1, 2 * grid, 16) and both.pooled.shape == (1, 16)
    assert not torch.allclose(both.tokens[:, :grid], both.tokens[:, grid:])  # same image, different view position
