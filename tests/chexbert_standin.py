"""A tiny random stand-in for CheXbert, built offline: a 1-layer BERT (hidden size 16) with CheXbert's 14 heads.

The weights are saved in CheXbert's checkpoint format (``{'model_state_dict': {'module.…': tensor}}``) and a
tiny ``vocab.txt`` + ``config.json`` stand in for ``bert-base-uncased``. f1chexbert does not hardcode BERT's
sizes (the heads read the width from the pooler), so the labeler builds it with f1chexbert's own class.
"""

from __future__ import annotations

from pathlib import Path

WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "no", "pleural", "effusion", "heart", "size", "is",
         "normal", "mild", "edema", "."]


def bert_folder(folder: Path, max_positions: int = 64) -> Path:
    """A ``bert-base-uncased`` stand-in folder: the vocabulary above and a tiny BERT config."""
    from transformers import BertConfig

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(WORDS) + "\n")
    BertConfig(vocab_size=len(WORDS), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
               intermediate_size=32, max_position_embeddings=max_positions,
               initializer_range=1.0).save_pretrained(folder)
    return folder


def chexbert_checkpoint(path: Path, bert: Path, head_classes: list[int] | None = None,
                        drop: str | None = None) -> Path:
    """CheXbert-format weights of a random tiny model; ``head_classes`` forces each head's argmax."""
    import torch
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    config = BertConfig.from_pretrained(bert)
    state = {f"bert.{k}": v for k, v in BertModel(config).state_dict().items()}
    state["bert.embeddings.position_ids"] = torch.arange(config.max_position_embeddings)[None]  # old format
    for head in range(14):
        n_classes = 2 if head == 13 else 4
        weight, bias = torch.randn(n_classes, config.hidden_size), torch.zeros(n_classes)
        if head_classes is not None:
            weight, bias = torch.zeros_like(weight), torch.zeros(n_classes)
            bias[head_classes[head]] = 1.0
        state[f"linear_heads.{head}.weight"], state[f"linear_heads.{head}.bias"] = weight, bias
    if drop is not None:
        del state[drop]
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model_state_dict": {f"module.{k}": v for k, v in state.items()}, "epoch": 3}, path)
    return path


def standin_next_to(folder: Path, max_positions: int = 64) -> Path:
    """``folder/chexbert.pth`` with its ``bert-base-uncased/`` stand-in beside it (found without options)."""
    bert = bert_folder(folder / "bert-base-uncased", max_positions)
    return chexbert_checkpoint(folder / "chexbert.pth", bert)
