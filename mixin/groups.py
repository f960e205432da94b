"""Rule groups and their rendering as a Prometheus rule file.

The YAML is assembled by hand so that each alert keeps a comment beside its `for:` saying why it
is that long; it is then loaded back and compared with the rules it was made from.

    >>> group = Group("demo", [{"record": "a:b:rate5m", "expr": "sum(rate(b_total[5m]))"}])
    >>> print(render_groups("# demo", [group]), end="")
    # demo
    groups:
      - name: demo
        rules:
          - record: a:b:rate5m
            expr: sum(rate(b_total[5m]))
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml


@dataclass(slots=True)
class Group:
    name: str
    rules: list[dict[str, Any]] = field(default_factory=list)
    comments: dict[int, str] = field(default_factory=dict)  # rule index -> comment before `for:`


class _Dumper(yaml.SafeDumper):
    """Long strings folded (`>-`) at 100 columns, as the hand-written files were."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = ">" if len(value) > 60 and " " in value else None  # names and URLs stay plain
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def render_groups(header: str, groups: list[Group]) -> str:
    lines = [header.rstrip("\n"), "groups:"]
    for group in groups:
        lines += [f"  - name: {group.name}", "    rules:"]
        for index, rule in enumerate(group.rules):
            text = yaml.dump([rule], Dumper=_Dumper, sort_keys=False, width=88, indent=2)
            rule_lines = ["      " + line if line else line for line in text.splitlines()]
            if index in group.comments:
                at = next(i for i, line in enumerate(rule_lines) if line.startswith("        for:"))
                rule_lines[at:at] = _comment(group.comments[index], "        ")
            if group.comments and index:
                lines.append("")
            lines += rule_lines
        lines.append("")
    text = "\n".join(lines).rstrip("\n") + "\n"
    _check_round_trip(text, groups)
    return text


def _comment(text: str, indent: str) -> list[str]:
    words, lines, line = text.split(), [], ""
    for word in words:
        if line and len(indent) + 2 + len(line) + 1 + len(word) > 100:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    lines.append(line)
    return [f"{indent}# {item}" for item in lines]


def _check_round_trip(text: str, groups: list[Group]) -> None:
    """The hand-assembled YAML must load back as exactly the rules it was made from."""
    expected = {"groups": [{"name": g.name, "rules": g.rules} for g in groups]}
    if yaml.safe_load(text) != expected:
        raise AssertionError("rendered rules do not load back as the generated rules")
