"""Plugin system: built-ins load as plugins, in-test plugins add components and recipes, errors help."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from rrgbench import hookimpl
from rrgbench.config import resolve_config
from rrgbench.errors import ConfigError, RRGBenchError, UnknownNameError
from rrgbench.extension.components import BuildContext, Memory, MemoryOutput
from rrgbench.extension.options import option
from rrgbench.model import build_model


@dataclasses.dataclass(frozen=True)
class ScaleOptions:
    factor: float = option(2.0, "multiply visual tokens by this", min=0.0)


class ScaleMemory(Memory):
    applies_to = ("visual",)

    def __init__(self, options: ScaleOptions, context: BuildContext) -> None:
        super().__init__()
        self.factor = options.factor

    def forward(self, queries, modality, mask=None):
        return MemoryOutput(consolidated=queries * self.factor)


class InTestPlugin:
    @hookimpl
    def rrgbench_register_memories(self, register):
        register("scale", lambda options, context: ScaleMemory(options, context), options=ScaleOptions,
                 description="test memory")

    @hookimpl
    def rrgbench_register_models(self, register):
        register("scaled-transformer", description="transformer with a scaling memory", memory="scale",
                 overrides={"memory.factor": 3.0})


def test_builtins_are_plugins(fresh_plugins):
    info = {p["name"]: p for p in fresh_plugins.plugin_info()}
    assert "builtins" in info
    assert "rrgbench_register_models" in info["builtins"]["hooks"]
    assert "transformer" in fresh_plugins.registry.names("model")


def test_in_test_plugin_adds_component_and_recipe(fresh_plugins, tiny):
    fresh_plugins.register_plugin(InTestPlugin(), name="in-test")
    reg = fresh_plugins.registry
    assert "scale" in reg.names("memory")
    config = resolve_config(reg, "scaled-transformer", "synthetic", tiny)
    assert config.components["memory"] == "scale"
    assert config.sections["memory"].factor == 3.0
    context = BuildContext(d_model=32, vocab_size=20, pad_id=0, bos_id=1, eos_id=2, max_len=10, n_views=1,
                           image_size=64)
    model = build_model(reg, config, context)
    assert isinstance(model.memory, ScaleMemory) and model.memory.factor == 3.0
    out = model(torch.randn(2, 1, 3, 64, 64), torch.tensor([[1, 5, 6, 2], [1, 7, 2, 0]]))
    assert torch.isfinite(out.loss)


def test_set_override_is_validated(fresh_plugins, tiny):
    fresh_plugins.register_plugin(InTestPlugin(), name="in-test")
    reg = fresh_plugins.registry
    config = resolve_config(reg, "scaled-transformer", "synthetic", {**tiny, "memory.factor": "0.5"})
    assert config.sections["memory"].factor == 0.5
    with pytest.raises(ConfigError, match="below the minimum"):
        resolve_config(reg, "scaled-transformer", "synthetic", {"memory.factor": "-1"})
    with pytest.raises(ConfigError, match="did you mean 'factor'"):
        resolve_config(reg, "scaled-transformer", "synthetic", {"memory.facter": "1"})
    with pytest.raises(ConfigError, match="expected float"):
        resolve_config(reg, "scaled-transformer", "synthetic", {"memory.factor": "big"})


def test_duplicate_name_names_both_plugins(fresh_plugins):
    class Dup:
        @hookimpl
        def rrgbench_register_models(self, register):
            register("transformer", description="again")

    fresh_plugins.register_plugin(Dup(), name="dup-plugin")
    with pytest.raises(RRGBenchError, match="registered twice: by plugin 'builtins' and by plugin 'dup-plugin'"):
        _ = fresh_plugins.registry


def test_unknown_names_suggest(fresh_plugins):
    with pytest.raises(UnknownNameError, match="did you mean 'transformer'"):
        fresh_plugins.registry.get("model", "transfomer")
    with pytest.raises(UnknownNameError, match="did you mean 'synthetic'"):
        resolve_config(fresh_plugins.registry, "transformer", "synthetc")


def test_misspelled_hook_is_caught(fresh_plugins):
    import pluggy

    class Typo:
        @hookimpl
        def rrgbench_register_model(self, register):  # missing "s"
            pass

    with pytest.raises(pluggy.PluginValidationError):
        fresh_plugins.register_plugin(Typo(), name="typo")


def test_plugin_module_from_environment(monkeypatch, tmp_path):
    from rrgbench.extension import plugins

    (tmp_path / "envplugin_mod.py").write_text(
        "from rrgbench import hookimpl\n"
        "@hookimpl\n"
        "def rrgbench_register_models(register):\n"
        "    register('env-model', description='from RRGBENCH_PLUGINS')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("RRGBENCH_PLUGINS", "envplugin_mod")
    plugins.reset()
    try:
        assert "env-model" in plugins.registry().names("model")
    finally:
        plugins.reset()


def test_missing_plugin_module_is_a_clear_error(fresh_plugins):
    from rrgbench.extension.plugins import load_modules

    with pytest.raises(ConfigError, match="cannot import plugin module 'no_such_plugin_xyz'"):
        load_modules(fresh_plugins, ["no_such_plugin_xyz"])


def test_failing_plugin_module_is_located_by_its_own_path(fresh_plugins, tmp_path, monkeypatch):
    """A plugin named like part of a stdlib path (``json/decoder.py``) is not blamed for the stdlib frame."""
    from rrgbench.extension.plugins import load_modules

    (tmp_path / "decoder.py").write_text("import json\n\njson.loads('{')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ConfigError, match="failed while importing: JSONDecodeError") as caught:
        load_modules(fresh_plugins, ["decoder"])
    assert str(caught.value).endswith(f"({tmp_path / 'decoder.py'}, line 3)")


def test_wildcard_listing(fresh_plugins):
    assert fresh_plugins.registry.names("dataset", "*-*") == ["iu-xray", "mimic-cxr"]
