"""Datasets: the shared ``Study`` record, R2Gen-compatible report cleaning, tokenizer and annotation files."""

from rrgbench.data.annotation import read_annotation, write_annotation
from rrgbench.data.cleaning import CLEANING_STYLES, clean_report
from rrgbench.data.studies import SPLITS, Study
from rrgbench.data.tokenizer import Tokenizer

__all__ = [
    "CLEANING_STYLES",
    "SPLITS",
    "Study",
    "Tokenizer",
    "clean_report",
    "read_annotation",
    "write_annotation",
]
