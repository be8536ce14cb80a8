"""Built-in dataset factories: the generated ``synthetic`` set and R2Gen-format ``iu-xray``/``mimic-cxr``."""

from __future__ import annotations

from pathlib import Path

from rrgbench.data.annotation import read_annotation
from rrgbench.data.prepare import PREPARED_INFO
from rrgbench.data.source import DatasetSource, cache_dir, data_dir_for
from rrgbench.data.synthetic_spec import SyntheticSpec
from rrgbench.data.validation import validate_studies
from rrgbench.errors import DataError
from rrgbench.io import read_json
from rrgbench_builtins.schemas import AnnotationDatasetOptions


def synthetic(options: SyntheticSpec, data_dir: str | None, allow_missing: bool = False) -> DatasetSource:
    """Generate (once, into the cache) and load the synthetic chest X-ray dataset."""
    from rrgbench.data.synthetic import build

    root = Path(data_dir) if data_dir else cache_dir() / "synthetic"
    folder = build(options, root)
    splits = read_annotation(folder / "annotation.json")
    return DatasetSource("synthetic", splits, folder, n_views=1, cleaning_style="iu-xray",
                         notes={"synthetic": {"fingerprint": options.fingerprint(), "difficulty": options.difficulty,
                                              "seed": options.seed, "folder": str(folder)}})


def image_root_of(folder: Path, image_dir: str) -> Path:
    """The explicit image_dir, else the root recorded by ``rrgbench data prepare``, else ``folder/images``."""
    if image_dir:
        return folder / image_dir
    recorded = folder / PREPARED_INFO
    if recorded.is_file():
        info = read_json(recorded, "prepared-data record")
        root = info.get("image_root") if isinstance(info, dict) else None
        if not isinstance(root, str) or not root:
            raise DataError(f"{recorded}: no 'image_root' folder name in it; rerun rrgbench data prepare")
        return Path(root)
    return folder / "images"


def _annotated(name: str, n_views: int, style: str, how_to: str):
    def load(options: AnnotationDatasetOptions, data_dir: str | None, allow_missing: bool = False) -> DatasetSource:
        folder = data_dir_for(name, data_dir, how_to)
        annotation = folder / "annotation.json"
        image_root = image_root_of(folder, options.image_dir)
        splits = read_annotation(annotation)
        report = validate_studies(splits, image_root, n_views=n_views, allow_missing=allow_missing,
                                  annotation_name=str(annotation))
        report.raise_if_failed()
        return DatasetSource(name, report.kept, image_root, n_views=n_views, cleaning_style=style,
                             notes={"data": {"skipped_missing_images": report.skipped_missing,
                                             "allow_missing": allow_missing}})

    load.__name__ = name.replace("-", "_")
    return load


iu_xray = _annotated(
    "iu-xray", 2, "iu-xray",
    "prepare it with: rrgbench data prepare iu-xray --reports ecgen-radiology/ --images NLMCXR_png/ --out DIR "
    "(or use R2Gen's iu_xray folder: annotation.json + images/)")
mimic_cxr = _annotated(
    "mimic-cxr", 1, "mimic-cxr",
    "prepare it with: rrgbench data prepare mimic-cxr --reports DIR --images DIR --split-csv "
    "mimic-cxr-2.0.0-split.csv --out DIR (or use R2Gen's mimic_cxr folder: annotation.json + images/)")
