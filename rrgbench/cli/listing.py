"""``rrgbench list`` and ``rrgbench plugins``: what is registered, with options, and which plugins loaded."""

from __future__ import annotations

import argparse
from typing import Any

from rrgbench.cli import echo, warn

_KIND_OF = {"models": "model", "encoders": "encoder", "memories": "memory", "alignments": "alignment",
            "decoders": "decoder", "datasets": "dataset", "metrics": "metric", "labelers": "labeler"}
_DEFAULT_COMPONENT = {"encoder": "timm", "memory": "none", "alignment": "none", "decoder": "transformer"}


def register(sub: Any) -> None:
    lst = sub.add_parser("list", help="list registered models, components, datasets, metrics or labelers")
    lst.add_argument("what", choices=("components", *_KIND_OF))
    lst.add_argument("pattern", nargs="?", default="*", help="wildcard filter, e.g. 'mcsam*'")
    lst.add_argument("--options", action="store_true", help="show each entry's options")
    lst.set_defaults(handler=cmd_list)
    plugins = sub.add_parser("plugins", help="list loaded plugins, their versions and hooks")
    plugins.set_defaults(handler=cmd_plugins)


def cmd_list(args: argparse.Namespace) -> int:
    from rrgbench.extension.plugins import registry

    reg = registry()
    kinds = tuple(_DEFAULT_COMPONENT) if args.what == "components" else (_KIND_OF[args.what],)
    for kind in kinds:
        if len(kinds) > 1:
            echo(f"{kind}s:")
        for entry in reg.entries(kind, args.pattern):
            echo(describe_entry(reg, entry, args.options))
    return 0


def describe_entry(reg: Any, entry: Any, with_options: bool) -> str:
    from rrgbench.extension.options import describe

    lines = [f"  {entry.name:<24} {entry.description}"]
    if entry.kind == "model":
        chosen = {kind: entry.extra.get(kind, default) for kind, default in _DEFAULT_COMPONENT.items()}
        lines.append(f"  {'':<24} components: " + ", ".join(f"{k}={v}" for k, v in chosen.items()))
        if with_options:
            for key, value in (entry.extra.get("overrides") or {}).items():
                lines.append(f"      {key} = {value!r}  (recipe)")
            for kind, name in chosen.items():
                for info in describe(reg.get(kind, name).options):
                    lines.append(f"      {kind}.{info.name}: {info.type} = {info.default!r}  {info.help}")
    elif with_options:
        for info in describe(entry.options):
            choices = f" (one of {', '.join(map(str, info.choices))})" if info.choices else ""
            lines.append(f"      {info.name}: {info.type} = {info.default!r}  {info.help}{choices}")
    return "\n".join(lines)


def cmd_plugins(args: argparse.Namespace) -> int:
    from rrgbench.extension.plugins import get_host

    host = get_host()
    for info in host.plugin_info():
        hooks = ", ".join(h.removeprefix("rrgbench_register_") for h in info["hooks"])
        echo(f"{info['name']:<28} {info['version'] or '-':<10} {hooks}")
    for problem in host.load_errors:
        warn(f"warning: {problem}")
    return 0
