"""The extension API of rrgbench: one registration hook per kind of thing a plugin can add.

Every hook receives a ``register`` callback and returns nothing; rrgbench collects what was
registered. Registration stores metadata and a *factory* (a callable or a lazy ``"module:attr"``
string), never an instance, so listing plugins imports nothing heavy. Options are frozen dataclasses
declared with :func:`rrgbench.extension.options.option`; they are validated, shown by
``rrgbench list ... --options`` and overridden with ``--set section.key=value``.

A plugin is any module (or object) with functions named like the hooks below, decorated with
``@rrgbench.hookimpl``. Packages expose it through the ``rrgbench`` entry-point group::

    [project.entry-points.rrgbench]
    my_plugin = "my_package.plugin"

Loading: built-in plugins (the ``rrgbench`` distribution's own entry points) always load; third-party
entry points load unless ``RRGBENCH_DISABLE_PLUGIN_AUTOLOAD=1``; ``-p module`` on the command line
or ``RRGBENCH_PLUGINS=mod1,mod2`` load extra modules by import name.

Component factories are called as ``factory(options, context)`` with the validated options instance
and a :class:`rrgbench.extension.components.BuildContext` (model width, vocabulary, views, ...), and return a
``torch.nn.Module`` honouring the contract of :mod:`rrgbench.extension.components`.
"""

from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("rrgbench")
hookimpl = pluggy.HookimplMarker("rrgbench")


@hookspec
def rrgbench_register_encoders(register):
    """Register image encoders: images ``[B, V, C, H, W]`` -> ``VisualFeatures(tokens [B, N, D], pooled [B, D])``.

    ``register(name, factory, *, options=NoOptions, description="")``. Example::

        @hookimpl
        def rrgbench_register_encoders(register):
            register("my-vit", "my_pkg.encoders:MyViT", options=MyViTOptions,
                     description="ViT-S/16 with view tokens")
    """


@hookspec
def rrgbench_register_memories(register):
    """Register memory banks: ``forward(queries [B, L, D], modality) -> MemoryOutput``.

    A memory may implement ``initialize(visual_feats, text_feats)`` for data-driven initialisation
    (MCSAM: optimal transport). Same ``register`` signature as encoders. Example::

        register("kv-memory", "my_pkg.memory:KVMemory", options=KVOptions, description="key-value slots")
    """


@hookspec
def rrgbench_register_alignments(register):
    """Register cross-modal alignment modules: ``forward(visual, text_or_None) -> AlignmentOutput``.

    Same ``register`` signature as encoders. Example::

        register("clip-loss", "my_pkg.align:ClipAlign", options=ClipOptions, description="InfoNCE")
    """


@hookspec
def rrgbench_register_decoders(register):
    """Register report decoders (contract in :class:`rrgbench.extension.components.Decoder`).

    ``embed(ids)`` -> word embeddings; ``encode(context, semantic)`` -> encoded state;
    ``decode(encoded, embeddings, cache)`` -> (logits [B, T, vocab], cache): the full teacher-forced
    pass when ``cache`` is None, one incremental step from ``init_cache(encoded)`` otherwise (greedy
    and beam search use it; both must give the same logits).
    Same ``register`` signature as encoders. Example::

        register("gru", "my_pkg.decoders:GRUDecoder", options=GRUOptions, description="2-layer GRU")
    """


@hookspec
def rrgbench_register_models(register):
    """Register model recipes: a name -> component names + option overrides.

    ``register(name, *, description, encoder="timm", memory="none", alignment="none",
    decoder="transformer", overrides=None, profiles=None, kind="generator")``.
    ``overrides`` maps ``"section.key"`` to values (sections: model, encoder, memory, alignment,
    decoder, data, train, decode, loss); ``profiles`` maps a profile name (``small``, ``paper``) to
    more overrides applied when a dataset runs that profile. Example::

        register("transformer-big", description="6-layer Transformer", decoder="transformer",
                 overrides={"decoder.layers": 6}, profiles={"small": {"decoder.layers": 2}})
    """


@hookspec
def rrgbench_register_datasets(register):
    """Register datasets: ``factory(options, data_dir) -> rrgbench.data.source.DatasetSource``.

    ``register(name, factory, *, options=NoOptions, description="", profile="paper", defaults=None)``
    where ``profile`` names the default size profile and ``defaults`` are ``"section.key"`` protocol
    defaults (max length, vocabulary threshold, ...). Example::

        register("chexpert-plus", "my_pkg.data:load", options=CXPOptions, profile="paper",
                 defaults={"data.max_len": 100, "data.threshold": 10})
    """


@hookspec
def rrgbench_register_metrics(register):
    """Register metric groups: ``factory(predictions, references, context) -> dict[key, MetricResult]``.

    ``register(name, factory, *, keys, description="", lower_is_better=())``. ``context`` is a
    :class:`rrgbench.scoring.engine.ScoringContext`. A metric that cannot run returns
    ``MetricResult.missing(reason)`` for its keys. Example::

        register("bertscore", "my_pkg.metrics:bertscore", keys=("bertscore_f1",))
    """


@hookspec
def rrgbench_register_labelers(register):
    """Register report labelers: text -> the 14 CheXpert observations (1, 0, -1 or None).

    ``register(name, factory, *, options=NoOptions, description="")``; ``factory(options)`` returns
    an object with ``name`` and ``label(reports) -> list[dict[str, int | None]]`` or raises
    :class:`rrgbench.errors.UnavailableError` with the reason. Example::

        register("my-labeler", "my_pkg.labeler:MyLabeler", description="fine-tuned BERT")
    """
