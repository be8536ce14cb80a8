"""``rrgbench list`` and ``rrgbench plugins``: what is registered, with options, and which plugins loaded."""

from __future__ import annotations

import argparse
from typing import Any

from rrgbench.cli import echo, warn

_KIND_OF = {"models": "model", "encoders": "encoder", "memories": "memory", "alignments": "alignment",
            "decoders": "decoder", "datasets": "dataset", "metrics": "metric", "labelers": "labeler"}


def register(sub: Any) -> None:
    lst = sub.add_parser("list", help="list registered models, components, datasets, metrics, labelers or options")
    lst.add_argument("what", choices=("components", *_KIND_OF, "options"))
    lst.add_argument("pattern", nargs="?", default="*",
                     help="wildcard filter, e.g. 'mcsam*' (for options: a section, e.g. train, or 'memory.*')")
    lst.add_argument("--options", action="store_true", help="show each entry's options")
    lst.add_argument("--model", default="transformer",
                     help="list options: the recipe whose options and values to show (default transformer)")
    lst.add_argument("--dataset", default="synthetic",
                     help="list options, models --options: the dataset values are resolved for (default synthetic)")
    lst.add_argument("--profile", help="list models --options: the size profile (default: the dataset's)")
    lst.set_defaults(handler=cmd_list)
    plugins = sub.add_parser("plugins", help="list loaded plugins, their versions and hooks")
    plugins.set_defaults(handler=cmd_plugins)


def cmd_list(args: argparse.Namespace) -> int:
    from rrgbench.config import COMPONENT_KINDS
    from rrgbench.extension.plugins import registry

    reg = registry()
    if args.what == "options":
        for line in option_table(reg, args.model, args.dataset, args.pattern):
            echo(line)
        return 0
    kinds = COMPONENT_KINDS if args.what == "components" else (_KIND_OF[args.what],)
    for kind in kinds:
        if len(kinds) > 1:
            echo(f"{kind}s:")
        for entry in reg.entries(kind, args.pattern):
            echo(describe_entry(reg, entry, args.options, args.dataset, args.profile))
    return 0


def describe_entry(reg: Any, entry: Any, with_options: bool, dataset: str = "synthetic",
                   profile: str | None = None) -> str:
    from rrgbench.config import components_of
    from rrgbench.extension.options import describe

    lines = [f"  {entry.name:<24} {entry.description}"]
    if entry.kind == "model":
        chosen = components_of(reg, entry.name)
        lines.append(f"  {'':<24} components: " + ", ".join(f"{k}={v}" for k, v in chosen.items()))
        if with_options:
            lines.extend(model_option_lines(reg, entry, chosen, dataset, profile))
    elif with_options:
        for info in describe(entry.options):
            choices = f" (one of {', '.join(map(str, info.choices))})" if info.choices else ""
            lines.append(f"      {info.name}: {info.type} = {info.default!r}  {info.help}{choices}")
    return "\n".join(lines)


def model_option_lines(reg: Any, entry: Any, chosen: dict[str, str], dataset: str, profile: str | None) -> list[str]:
    """A recipe's settings and component options with the values a run on ``dataset`` would actually use."""
    from rrgbench.config import resolve_config
    from rrgbench.extension.options import as_dict, describe

    config = resolve_config(reg, entry.name, dataset, profile=profile)

    def shown(key: str) -> str:
        section, _, name = key.partition(".")
        return f"{as_dict(config.sections[section])[name]!r}  [{config.sources.get(key, 'default')}]"

    lines = [f"      values used on {dataset} with profile {config.profile} [their source]; every profile: "
             f"rrgbench list options --model {entry.name} --dataset {dataset}"]
    components = {f"{kind}.{info.name}" for kind, name in chosen.items()
                  for info in describe(reg.get(kind, name).options)}
    for key in entry.extra.get("overrides") or {}:
        if key not in components:
            lines.append(f"      {key} = {shown(key)}")
    for kind, name in chosen.items():
        for info in describe(reg.get(kind, name).options):
            lines.append(f"      {kind}.{info.name}: {info.type} = {shown(f'{kind}.{info.name}')}  {info.help}")
    return lines


def cmd_plugins(args: argparse.Namespace) -> int:
    from rrgbench.extension.plugins import get_host

    host = get_host()
    for info in host.plugin_info():
        hooks = ", ".join(h.removeprefix("rrgbench_register_") for h in info["hooks"])
        echo(f"{info['name']:<28} {info['version'] or '-':<10} {hooks}")
    for problem in host.load_errors:
        warn(f"warning: {problem}")
    return 0


def option_table(reg: Any, model: str, dataset: str, pattern: str = "*") -> list[str]:
    """Every option of ``model`` on ``dataset``, by section: type, schema default, and the value each size
    profile gives with where it comes from (recipe, dataset, profile)."""
    import fnmatch

    from rrgbench.config import PROFILES, known_options, profile_of, resolve_config
    from rrgbench.extension.options import as_dict

    configs = {profile: resolve_config(reg, model, dataset, profile=profile) for profile in PROFILES}
    default_profile = profile_of(reg, dataset, None)
    wanted = pattern if any(ch in pattern for ch in "*?[.") else f"{pattern}.*"
    lines = [f"options of {model} on {dataset} (its default profile: {default_profile}); "
             f"value per profile, [source] when not the schema default:"]
    section = None
    for key, info in known_options(reg, model, dataset).items():
        if not fnmatch.fnmatch(key, wanted):
            continue
        name, _, option = key.partition(".")
        if name != section:
            section = name
            lines.append(f"{section}:")
        values = []
        for profile, config in configs.items():
            value = as_dict(config.sections[name])[option]
            source = config.sources.get(key)
            values.append(f"{profile}={value!r}" + (f" [{source}]" if source else ""))
        choices = f" (one of {', '.join(map(str, info.choices))})" if info.choices else ""
        lines.append(f"  {key}: {info.type} = {info.default!r}  {info.help}{choices}")
        lines.append(f"      {'; '.join(values)}")
    if len(lines) == 1:
        lines.append(f"  no option matches '{pattern}'")
    return lines
