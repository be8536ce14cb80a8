"""The ``chexbert`` labeler's plumbing, offline, on a tiny random stand-in for CheXbert (``chexbert_standin``).

No f1chexbert code is monkeypatched here (only its ``CACHE_DIR`` constant is pointed at a temporary folder); the
labeler builds the model with f1chexbert's own class, and one test checks it against f1chexbert's ``get_label``.
"""

from __future__ import annotations

import pytest

pytest.importorskip("f1chexbert")
torch = pytest.importorskip("torch")

from chexbert_standin import bert_folder, chexbert_checkpoint  # noqa: E402

from rrgbench.errors import UnavailableError  # noqa: E402
from rrgbench.metrics.labelers import OBSERVATIONS  # noqa: E402
from rrgbench.metrics.labelers.chexbert import (  # noqa: E402
    BERT_NAME,
    ENV_BERT,
    ENV_CHECKPOINT,
    HEAD_ORDER,
    CheXbertLabeler,
    ChexbertOptions,
    decode_heads,
)
from rrgbench.metrics.labelers.registry import build_labeler  # noqa: E402

REPORTS = ["No pleural effusion.", "Heart size is normal.", "", "mild   edema\n. no effusion"]


@pytest.fixture
def no_env(monkeypatch, tmp_path):
    monkeypatch.delenv(ENV_CHECKPOINT, raising=False)
    monkeypatch.delenv(ENV_BERT, raising=False)
    import f1chexbert.f1chexbert as library

    monkeypatch.setattr(library, "CACHE_DIR", str(tmp_path / "library-cache"))  # no real cache is consulted


def test_labels_come_out_with_the_14_observations(tmp_path, no_env):
    bert = bert_folder(tmp_path / "weights" / BERT_NAME)  # found next to the weights
    checkpoint = chexbert_checkpoint(tmp_path / "weights" / "chexbert.pth", bert)
    labeler = CheXbertLabeler(ChexbertOptions(checkpoint=str(checkpoint), device="cpu", batch_size=3))
    labels = labeler.label(REPORTS)
    assert labeler.name == "chexbert" and labeler.bert == str(bert)
    assert len(labels) == len(REPORTS)
    for study in labels:
        assert tuple(study) == OBSERVATIONS
        assert set(study.values()) <= {1, 0, -1, None}
    assert labeler.label([]) == []


def test_head_classes_map_to_chexpert_values(tmp_path, no_env, monkeypatch):
    bert = bert_folder(tmp_path / "bert")
    classes = [k % 4 for k in range(13)] + [1]  # blank, positive, negative, uncertain, ...; No Finding: positive
    checkpoint = chexbert_checkpoint(tmp_path / "chexbert.pth", bert, head_classes=classes)
    monkeypatch.setenv(ENV_CHECKPOINT, str(checkpoint))
    monkeypatch.setenv(ENV_BERT, str(bert))
    labeler = build_labeler(None, "chexbert", {"device": "cpu"})
    expected = {HEAD_ORDER[k]: {0: None, 1: 1, 2: 0, 3: -1}[classes[k]] for k in range(13)}
    expected["No Finding"] = 1
    assert labeler.label(REPORTS[:2]) == [expected, expected]
    assert decode_heads(classes) == expected


def test_batching_does_not_change_labels(tmp_path, no_env):
    bert = bert_folder(tmp_path / "bert")
    checkpoint = chexbert_checkpoint(tmp_path / "chexbert.pth", bert)
    one = CheXbertLabeler(ChexbertOptions(checkpoint=str(checkpoint), bert=str(bert), device="cpu", batch_size=1))
    many = CheXbertLabeler(ChexbertOptions(checkpoint=str(checkpoint), bert=str(bert), device="cpu", batch_size=4))
    labels = many.label(REPORTS)
    assert one.label(REPORTS) == labels
    assert len({tuple(study.values()) for study in labels}) > 1  # the stand-in tells the reports apart


def test_missing_weights_say_where_to_put_them(tmp_path, no_env):
    with pytest.raises(UnavailableError) as caught:
        CheXbertLabeler(ChexbertOptions())
    message = str(caught.value)
    assert "chexbert.pth" in message and ENV_CHECKPOINT in message and "--chexbert PATH" in message
    assert "\n" not in message
    with pytest.raises(UnavailableError, match="not found"):
        CheXbertLabeler(ChexbertOptions(checkpoint=str(tmp_path / "absent.pth")))


def test_missing_tokenizer_is_unavailable(tmp_path, no_env):
    bert = bert_folder(tmp_path / "elsewhere")
    checkpoint = chexbert_checkpoint(tmp_path / "w" / "chexbert.pth", bert)
    with pytest.raises(UnavailableError, match=f"{BERT_NAME}.*{ENV_BERT}"):
        CheXbertLabeler(ChexbertOptions(checkpoint=str(checkpoint)))


def test_incomplete_checkpoint_is_refused_not_half_random(tmp_path, no_env):
    bert = bert_folder(tmp_path / "bert")
    checkpoint = chexbert_checkpoint(tmp_path / "bad.pth", bert, drop="linear_heads.5.weight")
    with pytest.raises(UnavailableError, match=r"not a CheXbert checkpoint.*linear_heads\.5\.weight"):
        CheXbertLabeler(ChexbertOptions(checkpoint=str(checkpoint), bert=str(bert)))


def test_clinical_metrics_with_chexbert_absent_are_unavailable_not_zero(tmp_path, no_env):
    from rrgbench.scoring.engine import ScoringContext, score

    context = ScoringContext(labeler="chexbert", n_resamples=10)
    scores = score(["no effusion ."], ["no effusion ."], context, groups=["clinical"])
    for key, entry in scores.values.items():
        assert entry.value is None and "CheXbert weights not found" in entry.unavailable, key


def test_label_command_passes_labeler_options(tmp_path, no_env, capsys):
    import csv

    from rrgbench.cli import main

    bert = bert_folder(tmp_path / "bert")
    checkpoint = chexbert_checkpoint(tmp_path / "chexbert.pth", bert)
    source = tmp_path / "reports.csv"
    source.write_text("id,report\na,No pleural effusion.\nb,Heart size is normal.\n", encoding="utf-8")
    out = tmp_path / "labels.csv"
    code = main(["label", str(source), "--out", str(out), "--labeler", "chexbert", "--set", f"checkpoint={checkpoint}",
                 "--set", f"bert={bert}", "--set", "device=cpu"])
    assert code == 0, capsys.readouterr().err
    with open(out, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["id"] for row in rows] == ["a", "b"] and list(rows[0]) == ["id", *OBSERVATIONS]
    assert all(row[o] in {"1", "0", "-1", ""} for row in rows for o in OBSERVATIONS)


def test_clinical_record_names_the_chexbert_weights(tmp_path, no_env, monkeypatch):
    from rrgbench.scoring.engine import ScoringContext, score

    bert = bert_folder(tmp_path / "bert")
    checkpoint = chexbert_checkpoint(tmp_path / "chexbert.pth", bert)
    monkeypatch.setenv(ENV_CHECKPOINT, str(checkpoint))
    monkeypatch.setenv(ENV_BERT, str(bert))
    scores = score(REPORTS[:2], REPORTS[:2], ScoringContext(labeler="chexbert", n_resamples=10), groups=["clinical"])
    assert scores.protocol["clinical"]["labeler"] == "chexbert"
    assert scores.protocol["clinical"]["labeler_source"] == {"checkpoint": str(checkpoint), "bert": str(bert)}
    assert scores.values["ce_f1_micro"].value is not None


def test_same_labels_as_f1chexbert_get_label(tmp_path, no_env, monkeypatch):
    """Parity with the library's own single-report path (its hub names resolved to local folders via the cwd)."""
    import f1chexbert.f1chexbert as library

    bert = bert_folder(tmp_path / BERT_NAME)
    checkpoint = chexbert_checkpoint(tmp_path / "cache" / "chexbert.pth", bert)
    monkeypatch.setattr(library, "CACHE_DIR", str(checkpoint.parent))
    monkeypatch.chdir(tmp_path)  # transformers reads 'bert-base-uncased' as the local folder
    reference = library.F1CheXbert(device="cpu")
    ours = CheXbertLabeler(ChexbertOptions(checkpoint=str(checkpoint), bert=str(bert), device="cpu"))
    for report, labels in zip(REPORTS, ours.label(REPORTS), strict=True):
        expected = reference.get_label(report.strip(), mode="classification")
        assert [("" if labels[name] is None else labels[name]) for name in HEAD_ORDER] == expected, report


class _FixedHeads(torch.nn.Module):
    """A stand-in CheXbert whose 14 heads answer fixed classes per report (keyed by its unpadded token ids)."""

    def __init__(self, classes: dict[tuple[int, ...], list[int]]) -> None:
        super().__init__()
        self.classes = classes
        self.anchor = torch.nn.Parameter(torch.zeros(1))  # gives the labeler a device

    def forward(self, ids, mask):
        rows = [self.classes[tuple(row[m > 0].tolist())] for row, m in zip(ids, mask, strict=True)]
        return [torch.nn.functional.one_hot(torch.tensor([r[head] for r in rows]), 2 if head == 13 else 4).float()
                for head in range(14)]


@pytest.mark.filterwarnings("ignore:.*ill-defined:UserWarning")  # scikit-learn inside f1chexbert: 0/0 counts as 0
def test_default_mapping_scores_as_f1chexbert_itself(tmp_path, no_env, monkeypatch):
    """The chexbert labeler's own mapping (scoring.uncertain auto) gives f1chexbert's F1CheXbert numbers: its
    ``get_label(mode="rrg")`` (uncertain counts as positive) and scikit-learn ``classification_report``."""
    import f1chexbert.f1chexbert as library
    import numpy as np

    import rrgbench.metrics.labelers.chexbert as chexbert_module
    from rrgbench.scoring.engine import ScoringContext, score

    bert = bert_folder(tmp_path / BERT_NAME)
    checkpoint = chexbert_checkpoint(tmp_path / "chexbert.pth", bert)  # the stand-in tokenizer lies beside it
    monkeypatch.setattr(library, "CACHE_DIR", str(tmp_path))
    monkeypatch.chdir(tmp_path)  # f1chexbert's 'bert-base-uncased' is the local stand-in folder
    reference = library.F1CheXbert(device="cpu")
    texts = ["no pleural effusion .", "heart size is normal .", "mild edema .", "no edema .", "pleural effusion .",
             "heart size is mild .", "no heart .", "normal heart size .", "mild pleural effusion .", "no mild edema ."]
    rng = np.random.default_rng(3)
    encode = [tuple(reference.tokenizer.encode(text)) for text in texts]
    fixed = _FixedHeads({ids: [int(c) for c in rng.integers(4, size=13)] + [int(rng.integers(2))] for ids in encode})
    reference.model = fixed
    monkeypatch.setattr(chexbert_module, "load_model", lambda *args: (fixed, reference.tokenizer))
    hyps = [texts[i] for i in rng.integers(len(texts), size=16)]
    refs = [texts[i] for i in rng.integers(len(texts), size=16)]

    _, _, report, report_5 = reference(hyps, refs)
    context = ScoringContext(labeler="chexbert", chexbert=str(checkpoint), n_resamples=10)
    scores = score(hyps, refs, context, groups=["clinical"])
    values = {key: entry.value for key, entry in scores.values.items()}
    assert scores.protocol["clinical"]["uncertain_mapping"] == "chexbert"
    for average in ("micro", "macro"):
        for stat, name in (("precision", "precision"), ("recall", "recall"), ("f1", "f1-score")):
            assert values[f"ce_{stat}_{average}"] == pytest.approx(report[f"{average} avg"][name], abs=1e-12)
        assert values[f"ce_f1_{average}_5"] == pytest.approx(report_5[f"{average} avg"]["f1-score"], abs=1e-12)
    labels = CheXbertLabeler(ChexbertOptions(checkpoint=str(checkpoint), device="cpu")).label(hyps)
    assert any(-1 in study.values() for study in labels)  # uncertain labels occur, so the mapping matters:
    r2gen = score(hyps, refs, ScoringContext(labeler="chexbert", chexbert=str(checkpoint), uncertain="r2gen",
                                             n_resamples=10), groups=["clinical"])
    assert r2gen.values["ce_f1_micro"].value != pytest.approx(values["ce_f1_micro"], abs=1e-6)
