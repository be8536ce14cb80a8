"""timm pretrained backbones from the local cache only: tags and hf-hub names, refusal, random init, image stats."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import TINY
from rrgbench_builtins.encoders import TimmEncoder
from rrgbench_builtins.schemas import TimmEncoderOptions

from rrgbench.cli import main
from rrgbench.errors import ConfigError
from rrgbench.extension.components import BuildContext, ImageStats

TAGGED = "test_resnet.r160_in1k"  # a tiny model timm registers with weights on the hub (mean/std 0.5, bilinear)
CONTEXT = BuildContext(d_model=16, vocab_size=10, pad_id=0, bos_id=1, eos_id=2, max_len=8, n_views=1, image_size=64)


@pytest.fixture
def empty_caches(tmp_path, monkeypatch):
    """Fresh, empty Hugging Face and torch hub caches."""
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path / "hf"


@pytest.fixture
def cached(empty_caches):
    """The Hub repository timm/test_resnet.r160_in1k in the local cache, as timm's own download leaves it."""
    import timm
    from timm.models import save_for_hf

    torch.manual_seed(123)
    model = timm.create_model(TAGGED, pretrained=False)
    snapshot = empty_caches / "models--timm--test_resnet.r160_in1k" / "snapshots" / ("ab" * 20)
    save_for_hf(model, str(snapshot), safe_serialization=True)
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("ab" * 20)
    return model.state_dict(), snapshot


def _encoder(**options):
    return TimmEncoder(TimmEncoderOptions(**options), CONTEXT)


def _same_backbone(encoder, saved):
    own = encoder.backbone.state_dict()
    return all(torch.equal(own[k], saved[k]) for k in own) and len(own) < len(saved)  # the classifier is dropped


@pytest.mark.parametrize("name", [TAGGED, "hf-hub:timm/test_resnet.r160_in1k"])
def test_a_pretrained_name_loads_from_the_local_cache(cached, name):
    saved, snapshot = cached
    encoder = _encoder(backbone=name)
    assert _same_backbone(encoder, saved)
    assert encoder.image_stats() == ImageStats(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), interpolation="bilinear")
    init = encoder.initialization()
    assert init["weights"] == "pretrained" and init["found_in"] == "huggingface cache"
    assert init["source"] == str(snapshot / "model.safetensors") and init["mean"] == [0.5, 0.5, 0.5]
    assert init["image_stats_from"] == "timm data config"


def test_pretrained_true_takes_the_default_tag_and_false_starts_from_random(cached):
    saved, _ = cached
    assert _same_backbone(_encoder(backbone="test_resnet", pretrained=True), saved)
    torch.manual_seed(0)
    random = _encoder(backbone=TAGGED, pretrained=False)
    assert not _same_backbone(random, saved)
    assert random.initialization()["weights"] == "random" and random.image_stats() == ImageStats()


def test_rebuilding_a_saved_model_needs_no_cache(empty_caches):
    context = BuildContext(**{**CONTEXT.__dict__, "load_weights": False})
    encoder = TimmEncoder(TimmEncoderOptions(backbone=TAGGED), context)
    assert encoder.image_stats().mean == (0.5, 0.5, 0.5)  # from timm's registry, no file needed


@pytest.mark.parametrize("name, pretrained, message", [
    (TAGGED, None, "no weights of 'test_resnet.r160_in1k' in the Hugging Face cache"),
    ("hf-hub:timm/test_resnet.r160_in1k", None, "is not in the local Hugging Face cache"),
    ("test_resnet.bogus", None, "not a pretrained tag timm knows"),
    ("resnet18.a1_in1k_x", True, "not a pretrained tag timm knows"),
])
def test_missing_or_unknown_weights_are_refused_in_one_line(empty_caches, name, pretrained, message):
    with pytest.raises(ConfigError) as caught:
        _encoder(backbone=name, pretrained=pretrained)
    text = str(caught.value)
    assert message in text and "\n" not in text
    if "cache" in message:
        assert "encoder.pretrained=false" in text


def test_a_missing_pretrained_tag_fails_the_run_in_one_line(empty_caches, tmp_path, capsys):
    sets = [arg for key, value in {**TINY, "encoder.backbone": TAGGED}.items() for arg in ("--set", f"{key}={value}")]
    argv = ["run", "--model", "transformer", "--device", "cpu", "--out", str(tmp_path / "runs"), "--no-progress", *sets]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: encoder.backbone: no weights of 'test_resnet.r160_in1k'")


@pytest.mark.slow
def test_a_run_records_the_pretrained_weights_and_their_normalisation(cached, tmp_path, capsys):
    _, snapshot = cached
    sets = [arg for key, value in {**TINY, "encoder.backbone": TAGGED, "train.epochs": 0, "decode.max_len": 8}.items()
            for arg in ("--set", f"{key}={value}")]
    code = main(["run", "--model", "transformer", "--device", "cpu", "--out", str(tmp_path / "runs"), "--skip",
                 "meteor", "--no-progress", "--efficiency", "off", *sets])
    assert code == 0, capsys.readouterr().err
    [results] = list((tmp_path / "runs").rglob("results.json"))
    encoder = json.loads(results.read_text())["protocol"]["initialization"]["encoder"]
    assert encoder["weights"] == "pretrained" and encoder["pretrained_tag"] == "r160_in1k"
    assert Path(encoder["source"]) == snapshot / "model.safetensors"
    assert encoder["mean"] == [0.5, 0.5, 0.5] and encoder["interpolation"] == "bilinear"
    model_json = json.loads((results.parent / "model.json").read_text())
    assert model_json["image_stats"]["mean"] == [0.5, 0.5, 0.5]
