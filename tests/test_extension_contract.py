"""The extension contract is true: the hookspecs' documentation matches the code, and a plugin written from the
README and the hookspecs alone (tests/plugins_from_docs/kv_memory.py) trains, is recorded and is refused where
the documentation says it is."""

from __future__ import annotations

import inspect
import json
import re
import sys
from pathlib import Path

import pytest

from rrgbench.cli import main
from rrgbench.errors import RRGBenchError
from rrgbench.extension import components, hookspecs
from rrgbench.extension.plugins import _HOOK_OF_KIND, KINDS

DOCS_PLUGINS = Path(__file__).parent / "plugins_from_docs"
README = Path(__file__).resolve().parents[1] / "README.md"


def _documented_keywords(kind: str) -> set[str]:
    """Keyword names in the ``register(...)`` signature that the hook's docstring documents."""
    doc = getattr(hookspecs, _HOOK_OF_KIND[kind]).__doc__
    signature = re.search(r"``register\((.*?)\)``", doc, flags=re.DOTALL)
    assert signature, f"{kind}: the hookspec documents no register(...) signature"
    names = {part.split("=")[0].strip(" *\n") for part in signature.group(1).split(",")}
    return names - {"name", "factory", ""}


@pytest.mark.parametrize("kind", KINDS)
def test_each_hookspec_documents_exactly_the_keywords_register_accepts(kind):
    assert _documented_keywords(kind) == set(hookspecs.REGISTER_KEYWORDS[kind])


def test_documented_component_signatures_are_the_contracts():
    memory_doc = hookspecs.rrgbench_register_memories.__doc__
    assert "forward(queries [B, L, D], modality, mask=None)" in memory_doc
    assert list(inspect.signature(components.Memory.forward).parameters) == ["self", "queries", "modality", "mask"]
    assert "initialize(summary: TrainingSummary)" in memory_doc
    assert list(inspect.signature(components.Memory.initialize).parameters) == ["self", "summary"]
    assert "memory_size()" in memory_doc and "applies_to" in memory_doc
    assert "applies_to" not in vars(components.Memory)  # no silent default: a subclass must say it
    dataset_doc = hookspecs.rrgbench_register_datasets.__doc__
    assert "factory(options, data_dir, *, allow_missing)" in dataset_doc
    from rrgbench_builtins import datasets

    for factory in (datasets.synthetic, datasets.iu_xray, datasets.mimic_cxr):
        assert list(inspect.signature(factory).parameters)[:3] == ["options", "data_dir", "allow_missing"]


def test_the_readme_plugin_example_uses_the_documented_api():
    text = README.read_text(encoding="utf-8")
    example = text.split("## Writing a plugin", 1)[1].split("```python", 1)[1].split("```", 1)[0]
    for needle in ("applies_to", "memory_size", "ablation_of", "from rrgbench import hookimpl",
                   "from rrgbench.extension.options import option"):
        assert needle in example, needle


@pytest.fixture
def docs_plugin(fresh_plugins, monkeypatch):
    monkeypatch.syspath_prepend(str(DOCS_PLUGINS))
    yield fresh_plugins
    sys.modules.pop("kv_memory", None)


def test_an_unknown_register_keyword_names_the_plugin(fresh_plugins):
    class Typo:
        @hookspecs.hookimpl
        def rrgbench_register_models(self, register):
            register("typo-model", description="x", ablation="transformer")

    fresh_plugins.register_plugin(Typo(), name="typo-plugin")
    with pytest.raises(RRGBenchError, match=r"plugin 'typo-plugin'.*unknown keyword\(s\) ablation.*ablation_of"):
        fresh_plugins.registry  # noqa: B018 - collecting the registry runs the hooks


@pytest.mark.slow
def test_a_plugin_written_from_the_docs_trains_and_is_recorded(docs_plugin, tiny, tmp_path, capsys):
    sets = [arg for key, value in {**tiny, "memory.slots": 48}.items() for arg in ("--set", f"{key}={value}")]
    code = main(["-p", "kv_memory", "run", "--model", "transformer-kv", "--device", "cpu", "--out", str(tmp_path),
                 "--no-progress", "--skip", "meteor", *sets])
    assert code == 0, capsys.readouterr().err
    [file] = list(tmp_path.rglob("results.json"))
    record = json.loads(file.read_text())
    assert record["ablation_of"] == "transformer" and record["config"]["components"]["memory"] == "kv"
    retrieval = record["efficiency"]["retrieval"]
    assert retrieval["memory_size"] == 48 and 0 < retrieval["share_of_forward"] < 1
    plugins = {p["plugin"]: p for p in record["environment"]["plugins"]}
    assert plugins["kv_memory"]["contributed"] == ["model:transformer-kv", "memory:kv"]
    assert len(plugins["kv_memory"]["source_sha256"]) == 64


def test_a_memory_that_applies_to_nothing_is_refused_naming_recipe_and_plugin(docs_plugin, tiny, tmp_path, capsys):
    sets = [arg for key, value in tiny.items() for arg in ("--set", f"{key}={value}")]
    code = main(["-p", "kv_memory", "-q", "run", "--model", "transformer-forgetful", "--device", "cpu", "--out",
                 str(tmp_path), "--no-progress", *sets])  # -q: only the error on stderr, not the run's log
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "recipe 'transformer-forgetful'" in err and "plugin 'kv_memory'" in err and "applies to no modality" in err
