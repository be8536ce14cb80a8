"""The extension API of rrgbench: one registration hook per kind of thing a plugin can add.

Every hook receives a ``register`` callback and returns nothing; rrgbench collects what was
registered. Registration stores metadata and a *factory* (a callable or a lazy ``"module:attr"``
string), never an instance, so listing plugins imports nothing heavy. Options are frozen dataclasses
declared with :func:`rrgbench.extension.options.option`; they are validated, shown by
``rrgbench list ... --options`` / ``rrgbench list options`` and overridden with ``--set section.key=value``.
A keyword ``register`` does not know is an error naming the plugin (a typo never passes silently).

A plugin is any module (or object) with functions named like the hooks below, decorated with
``@rrgbench.hookimpl``. Packages expose it through the ``rrgbench`` entry-point group::

    [project.entry-points.rrgbench]
    my_plugin = "my_package.plugin"

Loading: built-in plugins (the ``rrgbench`` distribution's own entry points) always load; third-party
entry points load unless ``RRGBENCH_DISABLE_PLUGIN_AUTOLOAD=1``; ``-p module`` on the command line
or ``RRGBENCH_PLUGINS=mod1,mod2`` load extra modules by import name.

Component factories are called as ``factory(options, context)`` with the validated options instance
and a :class:`rrgbench.extension.components.BuildContext` (model width, vocabulary, views, ...), and
return a ``torch.nn.Module`` honouring the contract of :mod:`rrgbench.extension.components`.
"""

from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("rrgbench")
hookimpl = pluggy.HookimplMarker("rrgbench")

REGISTER_KEYWORDS: dict[str, tuple[str, ...]] = {
    "encoder": ("options", "description"),
    "memory": ("options", "description"),
    "alignment": ("options", "description"),
    "decoder": ("options", "description"),
    "model": ("description", "encoder", "memory", "alignment", "decoder", "overrides", "profiles", "ablation_of",
              "baseline_without_memory"),
    "dataset": ("options", "description", "profile", "defaults"),
    "metric": ("description", "keys", "preflight"),
    "labeler": ("options", "description", "uncertain"),
}
"""The keywords ``register`` accepts for each kind (besides the name and the factory)."""


@hookspec
def rrgbench_register_encoders(register):
    """Register image encoders: ``forward(images [B, V, C, H, W]) -> VisualFeatures(tokens [B, N, D], pooled [B, D])``.

    ``register(name, factory, *, options=NoOptions, description="")``; the module sets ``out_dim`` (= D).
    Example::

        @hookimpl
        def rrgbench_register_encoders(register):
            register("my-vit", "my_pkg.encoders:MyViT", options=MyViTOptions,
                     description="ViT-S/16 with view tokens")
    """


@hookspec
def rrgbench_register_memories(register):
    """Register memory banks (contract: :class:`rrgbench.extension.components.Memory`).

    ``forward(queries [B, L, D], modality, mask=None) -> MemoryOutput``; the class must set ``applies_to``,
    the modalities it consolidates (``("visual",)``, ``("text",)`` or both: a recipe whose memory applies to
    nothing is refused when the model is built); ``memory_size()`` returns N_m (for cost plots). A memory
    that wants data-driven initialisation returns True from ``wants_initialization()`` and implements
    ``initialize(summary: TrainingSummary) -> dict`` (figures to record; MCSAM: optimal transport). A memory
    whose eval-mode output at each position depends only on that position's query sets ``position_wise =
    True``: decoding then queries it once per vocabulary token, not once per hypothesis and step.
    ``register(name, factory, *, options=NoOptions, description="")``. Example::

        register("kv-memory", "my_pkg.memory:KVMemory", options=KVOptions, description="key-value slots")
    """


@hookspec
def rrgbench_register_alignments(register):
    """Register cross-modal alignment modules: ``forward(visual, text_or_None) -> AlignmentOutput``.

    ``visual`` and ``text`` are :class:`~rrgbench.extension.components.MemoryOutput` (text is None when
    decoding); the output's ``loss`` is logged and weighted as ``align`` (``loss.weights``).
    ``register(name, factory, *, options=NoOptions, description="")``. Example::

        register("clip-loss", "my_pkg.align:ClipAlign", options=ClipOptions, description="InfoNCE")
    """


@hookspec
def rrgbench_register_decoders(register):
    """Register report decoders (contract in :class:`rrgbench.extension.components.Decoder`).

    ``embed(ids)`` -> word embeddings; ``encode(context, semantic)`` -> encoded state;
    ``decode(encoded, embeddings, cache)`` -> (logits [B, T, vocab], cache): the full teacher-forced
    pass when ``cache`` is None, one incremental step from ``init_cache(encoded)`` otherwise (greedy
    and beam search use it; both must give the same logits).
    ``register(name, factory, *, options=NoOptions, description="")``. Example::

        register("gru", "my_pkg.decoders:GRUDecoder", options=GRUOptions, description="2-layer GRU")
    """


@hookspec
def rrgbench_register_models(register):
    """Register model recipes: a name -> component names + option overrides.

    ``register(name, *, description, encoder="timm", memory="none", alignment="none", decoder="transformer",
    overrides=None, profiles=None, ablation_of=None, baseline_without_memory=None)``.
    ``overrides`` maps ``"section.key"`` to values (sections: model, encoder, memory, alignment, decoder,
    dataset, data, train, decode, loss, scoring, efficiency); ``profiles`` maps a profile name (``small``,
    ``paper``) to more overrides applied when a dataset runs that profile (soft: keys the chosen
    components lack are skipped). ``ablation_of`` names the recipe this one ablates (a leaderboard tests
    it against that base); ``baseline_without_memory`` names the recipe whose cost is compared with this
    one's to measure the memory's overhead (default: this model with its memory replaced by the
    identity). Example::

        register("transformer-big", description="6-layer Transformer", decoder="transformer",
                 overrides={"decoder.layers": 6}, profiles={"small": {"decoder.layers": 2}},
                 ablation_of="transformer")
    """


@hookspec
def rrgbench_register_datasets(register):
    """Register datasets: ``factory(options, data_dir, *, allow_missing) -> rrgbench.data.source.DatasetSource``.

    ``data_dir`` is ``--data-dir`` (or None); ``allow_missing`` is ``data.allow_missing`` (skip studies
    whose images are absent, and say how many in the source's ``notes``).
    ``register(name, factory, *, options=NoOptions, description="", profile="paper", defaults=None)``
    where ``profile`` names the default size profile and ``defaults`` are ``"section.key"`` protocol
    defaults (max length, vocabulary threshold, selection metric, ...). Example::

        register("chexpert-plus", "my_pkg.data:load", options=CXPOptions, profile="paper",
                 defaults={"data.max_len": 100, "data.threshold": 10})
    """


@hookspec
def rrgbench_register_metrics(register):
    """Register metric groups: ``factory(predictions, references, context) -> GroupResult``.

    ``register(name, factory, *, keys, description="", preflight=None)``: ``keys`` are the group's
    :class:`rrgbench.metrics.base.MetricKey` declarations (name, ``higher_is_better``, the leaderboard
    ``section``: language, clinical or other, a short ``label``); a plain string means higher is better.
    ``context`` is a :class:`rrgbench.scoring.engine.ScoringContext` (``context.wanted``: compute only those
    keys when set; ``context.skip``: keys not to compute). The factory returns a
    :class:`rrgbench.metrics.base.GroupResult` (its metrics, what it used for the record's protocol, side
    tables) or a plain ``{key: MetricResult}``; it writes no files. A group that cannot run raises
    :class:`rrgbench.errors.UnavailableError` with the reason (its keys are recorded as unavailable).
    ``preflight`` (optional, a callable or ``"module:function"``) is called with the context before a run
    trains or anything is scored, when some of the group's keys are wanted; it raises ``UnavailableError``
    when a setting the user chose cannot work (a model file passed on the command line that is absent or
    wrong), so the run fails in seconds instead of after training. Example::

        register("bertscore", "my_pkg.metrics:bertscore",
                 keys=(MetricKey("bertscore_f1", higher_is_better=True, section="language", label="BERTScore"),))
    """


@hookspec
def rrgbench_register_labelers(register):
    """Register report labelers: text -> the 14 CheXpert observations (1, 0, -1 or None).

    ``register(name, factory, *, options=NoOptions, description="", uncertain="r2gen")``; ``factory(options)``
    returns an object with ``name`` and ``label(reports) -> list[dict[str, int | None]]`` or raises
    :class:`rrgbench.errors.UnavailableError` with the reason. ``uncertain`` is the labeler's own
    uncertain-label mapping (``r2gen``: only 1 is positive; ``chexbert``: 1 and -1), used when
    ``scoring.uncertain`` is ``auto`` (the default). Example::

        register("my-labeler", "my_pkg.labeler:MyLabeler", description="fine-tuned BERT")
    """
