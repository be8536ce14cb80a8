"""The ``radgraph`` metric group, offline, on a tiny random stand-in for a RadGraph model folder.

The stand-in has radgraph's layout (``config.json``, ``weights.th``, ``vocabulary/``): a DyGIE model over a
1-layer BERT (hidden size 16) whose ``model_name`` is a local folder, built with radgraph's own classes exactly
as ``radgraph.RadGraph`` builds it, with random weights. Nothing of radgraph is monkeypatched; the numbers are
checked against radgraph's own ``F1RadGraph`` on the same model.
"""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path

import pytest

pytest.importorskip("radgraph")
torch = pytest.importorskip("torch")

from rrgbench.metrics import radgraph as rg  # noqa: E402
from rrgbench.scoring.engine import ScoringContext, score  # noqa: E402

WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "1", "2", "a", "b", "no", "acute", "pleural", "effusion",
         "heart", "size", "is", "normal", "lungs", "are", "clear", "mild", "edema", ".", "there"]
PREDICTIONS = ["no acute effusion .", "heart size is normal .", "", "mild edema ."]
REFERENCES = ["no pleural effusion .", "heart size is normal . lungs are clear .", "there is edema .", "mild edema ."]


def _tiny_bert(folder: Path) -> Path:
    from transformers import BertConfig

    folder.mkdir(parents=True)
    (folder / "vocab.txt").write_text("\n".join(WORDS) + "\n")
    BertConfig(vocab_size=len(WORDS), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
               intermediate_size=32, max_position_embeddings=64).save_pretrained(folder)
    return folder


def _config(model_name: str) -> dict:
    bert = {"type": "pretrained_transformer_mismatched", "model_name": model_name, "max_length": 64}
    return {
        "dataset_reader": {"type": "dygie", "max_span_width": 3, "token_indexers": {"bert": bert}},
        "model": {
            "type": "dygie", "embedder": {"token_embedders": {"bert": bert}}, "initializer": {},
            "module_initializer": {}, "feature_size": 4, "max_span_width": 3, "target_task": "relation",
            "feedforward_params": {"num_layers": 1, "hidden_dims": 8, "dropout": 0.0},
            "loss_weights": {"ner": 1.0, "relation": 1.0, "coref": 0.0, "events": 0.0},
            "modules": {
                "ner": {},
                "coref": {"spans_per_word": 0.3, "max_antecedents": 10, "coref_prop": 0},
                "relation": {"spans_per_word": 0.5},
                "events": {"trigger_spans_per_word": 0.3, "argument_spans_per_word": 0.8,
                           "loss_weights": {"trigger": 1.0, "arguments": 1.0}},
            },
        },
    }


def _model_folder(folder: Path, model_name: str) -> Path:
    """A RadGraph model folder with random weights, built the way radgraph.RadGraph rebuilds it."""
    from dotmap import DotMap
    from radgraph.allennlp.data import Vocabulary
    from radgraph.allennlp.modules import text_field_embedders, token_embedders
    from radgraph.dygie.models import dygie

    vocabulary = folder / "vocabulary"
    vocabulary.mkdir(parents=True)
    (vocabulary / "non_padded_namespaces.txt").write_text("*tags\n*labels\n")
    (vocabulary / "radgraph__ner_labels.txt").write_text("\nANAT-DP\nOBS-DP\nOBS-DA\nOBS-U\n")
    (vocabulary / "radgraph__relation_labels.txt").write_text("\nmodify\nlocated_at\nsuggestive_of\n")
    config = _config(model_name)
    (folder / "config.json").write_text(json.dumps(config))
    torch.manual_seed(0)
    model_config = DotMap(config).model
    embedder = text_field_embedders.BasicTextFieldEmbedder(
        {"bert": token_embedders.PretrainedTransformerMismatchedEmbedder(model_name=model_name, max_length=64)})
    for name in ("type", "embedder", "initializer", "module_initializer"):
        del model_config[name]
    model = dygie.DyGIE(vocab=Vocabulary.from_files(str(vocabulary)), embedder=embedder, **model_config)
    torch.save(model.state_dict(), folder / "weights.th")
    return folder


@pytest.fixture(scope="module")
def stand_in(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("radgraph-cache")
    bert = _tiny_bert(root / "tiny-bert")
    _model_folder(root / "radgraph", str(bert))
    return root


@pytest.fixture
def clean_env(monkeypatch):
    monkeypatch.delenv(rg.ENV_DIR, raising=False)
    monkeypatch.delenv(rg.ENV_MODEL, raising=False)


def test_scores_match_radgraph_f1radgraph(stand_in, clean_env, monkeypatch):
    from radgraph import F1RadGraph

    monkeypatch.setenv(rg.ENV_DIR, str(stand_in))
    results = rg.score_radgraph(PREDICTIONS, REFERENCES)
    assert set(results) == set(rg.RADGRAPH_KEYS)
    reference = F1RadGraph(reward_level="all", model_type="radgraph", model_cache_dir=str(stand_in), cuda=-1)
    mean, (simple, partial, complete), _, _ = reference(refs=REFERENCES, hyps=PREDICTIONS)
    assert results["radgraph_simple"].per_sample == pytest.approx(simple)
    assert results["radgraph_f1"].per_sample == pytest.approx(partial)
    assert results["radgraph_complete"].per_sample == pytest.approx(complete)
    assert results["radgraph_f1"].value == pytest.approx(mean[1])
    assert max(simple) > 0.0  # the stand-in finds entities: the comparison is not all zeros
    for result in results.values():
        assert result.per_sample[2] == 0.0  # empty prediction
        assert all(0.0 <= s <= 1.0 for s in result.per_sample)
        assert result.details["model_type"] == "radgraph"


def test_metric_group_records_values_cis_and_protocol(stand_in, clean_env, monkeypatch):
    monkeypatch.setenv(rg.ENV_DIR, str(stand_in / "radgraph"))  # the model folder itself works too
    scores = score(PREDICTIONS, REFERENCES, ScoringContext(n_resamples=50), groups=["radgraph"])
    for key in rg.RADGRAPH_KEYS:
        entry = scores.values[key]
        assert isinstance(entry.value, float) and len(entry.ci95) == 2, key
    assert scores.protocol["radgraph"]["model_type"] == "radgraph"


def test_folder_with_another_name_is_found_by_its_vocabulary(stand_in, clean_env, monkeypatch, tmp_path):
    other = tmp_path / "my-radgraph-copy"
    other.symlink_to(stand_in / "radgraph", target_is_directory=True)
    monkeypatch.setenv(rg.ENV_DIR, str(other))
    location = rg.find_model()
    assert location.model_type == "radgraph" and location.folder == other
    rg.load_annotator.cache_clear()
    results = rg.score_radgraph(PREDICTIONS[:2], REFERENCES[:2])
    assert results["radgraph_f1"].value is not None


def test_missing_model_folder_is_unavailable_with_where_to_put_it(tmp_path, clean_env, monkeypatch):
    monkeypatch.setenv(rg.ENV_DIR, str(tmp_path))
    scores = score(["no effusion ."], ["no effusion ."], ScoringContext(), groups=["radgraph"])
    for key in rg.RADGRAPH_KEYS:
        entry = scores.values[key]
        assert entry.value is None, key
        assert "RadGraph model not found" in entry.unavailable and rg.ENV_DIR in entry.unavailable


def test_package_not_installed_is_unavailable_with_install_hint(clean_env, monkeypatch):
    real_version = metadata.version

    def version(name: str) -> str:
        if name == "radgraph":
            raise metadata.PackageNotFoundError(name)
        return real_version(name)

    monkeypatch.setattr(rg.metadata, "version", version)
    scores = score(["a ."], ["a ."], ScoringContext(), groups=["radgraph"])
    entry = scores.values["radgraph_f1"]
    assert (entry.value, entry.higher_is_better, entry.unavailable) == (None, True, rg.NOT_INSTALLED)
    assert "pip install radgraph" in rg.NOT_INSTALLED


def test_base_transformer_not_cached_offline_is_unavailable(tmp_path, clean_env, monkeypatch):
    folder = tmp_path / "radgraph"
    (folder / "vocabulary").mkdir(parents=True)
    (folder / "vocabulary" / "radgraph__ner_labels.txt").write_text("\nOBS-DP\n")
    (folder / "weights.th").write_bytes(b"")
    (folder / "config.json").write_text(json.dumps(_config("nobody/not-a-cached-model")))
    monkeypatch.setenv(rg.ENV_DIR, str(tmp_path))
    scores = score(["a ."], ["a ."], ScoringContext(), groups=["radgraph"])
    assert "nobody/not-a-cached-model" in scores.values["radgraph_f1"].unavailable
