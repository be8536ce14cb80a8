"""rrgbench's own components, recipes, datasets and metrics, registered exactly like a third-party plugin.

Registered here: the ``timm`` encoder, the ``none`` memory and alignment, the ``transformer``
decoder, the ``transformer`` recipe (R2Gen's BASE model), the ``synthetic``, ``iu-xray`` and
``mimic-cxr`` datasets, the ``nlg``, ``clinical`` and ``radgraph`` metric groups and the
``chexpert-rules`` and ``chexbert`` labelers.
"""

from __future__ import annotations

from rrgbench import hookimpl
from rrgbench.data.synthetic_spec import SyntheticSpec
from rrgbench.extension.options import NoOptions
from rrgbench.metrics.base import MetricKey
from rrgbench.metrics.labelers.chexbert import ChexbertOptions
from rrgbench_builtins.schemas import (
    AnnotationDatasetOptions,
    TimmEncoderOptions,
    TransformerDecoderOptions,
)

NLG_KEYS = tuple(MetricKey(name, True, "language", label) for name, label in (
    ("bleu_1", "BLEU-1"), ("bleu_2", "BLEU-2"), ("bleu_3", "BLEU-3"), ("bleu_4", "BLEU-4"), ("meteor", "METEOR"),
    ("rouge_l", "ROUGE-L"), ("cider", "CIDEr")))
CE_KEYS = tuple(MetricKey(name, True, "clinical", label) for name, label in (
    ("ce_precision_micro", "CE P micro"), ("ce_recall_micro", "CE R micro"), ("ce_f1_micro", "CE F1 micro"),
    ("ce_precision_macro", "CE P macro"), ("ce_recall_macro", "CE R macro"), ("ce_f1_macro", "CE F1 macro"),
    ("ce_f1_micro_5", "CE F1 micro-5"), ("ce_f1_macro_5", "CE F1 macro-5")))
RADGRAPH_KEYS = tuple(MetricKey(name, True, "clinical", label) for name, label in (
    ("radgraph_f1", "RadGraph F1"), ("radgraph_simple", "RadGraph simple"), ("radgraph_complete", "RadGraph complete")))


@hookimpl
def rrgbench_register_encoders(register):
    register("timm", "rrgbench_builtins.encoders:TimmEncoder", options=TimmEncoderOptions,
             description="any timm backbone; last feature map -> visual tokens; views concatenated")


@hookimpl
def rrgbench_register_memories(register):
    register("none", "rrgbench.extension.components:_no_memory", options=NoOptions, description="no memory (identity)")


@hookimpl
def rrgbench_register_alignments(register):
    register("none", "rrgbench.extension.components:_no_alignment", options=NoOptions,
             description="no alignment (no semantic embedding, no loss)")


@hookimpl
def rrgbench_register_decoders(register):
    register("transformer", "rrgbench_builtins.transformer:TransformerDecoder", options=TransformerDecoderOptions,
             description="Transformer encoder-decoder over visual tokens, cached incremental decoding")


@hookimpl
def rrgbench_register_models(register):
    register(
        "transformer",
        description="R2Gen's BASE model: ResNet-101 + 3-layer Transformer encoder-decoder (no memory). "
                    "Random init offline (the paper used ImageNet weights: set encoder.weights=PATH).",
        encoder="timm", memory="none", alignment="none", decoder="transformer",
        overrides={"encoder.backbone": "resnet101"},
    )


@hookimpl
def rrgbench_register_datasets(register):
    register("synthetic", "rrgbench_builtins.datasets:synthetic", options=SyntheticSpec, profile="small",
             description="generated chest-X-ray-like images with findings matching their reports (offline)",
             defaults={"data.max_len": 60, "data.threshold": 3, "data.flip": False,
                       "train.select_metric": "ce_f1_micro"})
    register("iu-xray", "rrgbench_builtins.datasets:iu_xray", options=AnnotationDatasetOptions, profile="paper",
             description="IU X-Ray (Open-i), R2Gen annotation.json + images, frontal+lateral",
             defaults={"data.max_len": 60, "data.threshold": 3})
    register("mimic-cxr", "rrgbench_builtins.datasets:mimic_cxr", options=AnnotationDatasetOptions, profile="paper",
             description="MIMIC-CXR (PhysioNet, credentialed), R2Gen annotation.json + images, one view",
             defaults={"data.max_len": 100, "data.threshold": 10})


@hookimpl
def rrgbench_register_metrics(register):
    register("nlg", "rrgbench_builtins.metrics:nlg", keys=NLG_KEYS,
             description="pycocoevalcap BLEU-1..4, METEOR (Java), ROUGE-L, CIDEr-D on cleaned, untruncated text")
    register("clinical", "rrgbench_builtins.metrics:clinical", keys=CE_KEYS,
             preflight="rrgbench_builtins.metrics:clinical_preflight",
             description="CheXpert-label precision/recall/F1 (micro, macro, 14 and 5 observations) of the "
                         "generated vs the reference reports, with the run's labeler")
    register("radgraph", "rrgbench_builtins.metrics:radgraph", keys=RADGRAPH_KEYS,
             preflight="rrgbench_builtins.metrics:radgraph_preflight",
             description="RadGraph F1 (radgraph package; model folder via $RRGBENCH_RADGRAPH): partial "
                         "(radgraph_f1), simple and complete rewards")


@hookimpl
def rrgbench_register_labelers(register):
    register("chexpert-rules", "rrgbench_builtins.metrics:chexpert_rules", options=NoOptions, uncertain="r2gen",
             description="offline rule-based CheXpert-style labeler (CheXpert phrase lists, NegBio patterns)")
    register("chexbert", "rrgbench_builtins.metrics:chexbert", options=ChexbertOptions, uncertain="chexbert",
             description="CheXbert via f1chexbert, offline: chexbert.pth via --chexbert PATH (option checkpoint) "
                         "or $RRGBENCH_CHEXBERT, bert-base-uncased tokenizer next to it or via option bert; "
                         "uncertain counts as positive, as in f1chexbert")
