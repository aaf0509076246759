"""The YAML dialect of config files and `--set` values: PyYAML's safe loader made strict where YAML's
defaults silently change what a user wrote (issue 26).

- A key repeated in one mapping (a second `run:` section) is refused, naming the key and both lines:
  PyYAML keeps the last one and drops the first without a word.
- Aliases (`*name`) are refused: a handful of them nest into a billion-element value (the "billion
  laughs" bomb) that takes minutes and all memory to print or copy; configs gain nothing from them.
- Integers follow YAML 1.2 (the core schema): `010` is ten, not eight (YAML 1.1's octal), `1:30` is the
  text "1:30", not 90 (YAML 1.1's base 60), and `0o10` / `0x1f` are octal / hex. Floats likewise: YAML
  1.2 reads `1e-4` as a number (1.1 needs a dot) and has no base-60 floats.
"""

from __future__ import annotations

import re

import yaml


class StrictYAMLError(ValueError):
    """The text uses a YAML feature configs refuse; the message names the line and the fix."""


_INT_1_2 = re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$")
_FLOAT_1_2 = re.compile(r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
                        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$")


class _StrictLoader(yaml.SafeLoader):
    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise StrictYAMLError(f"line {event.start_mark.line + 1}: the alias *{event.anchor} is not accepted in "
                                  "a config (aliases can expand without bound); write the value out")
        return super().compose_node(parent, index)

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: dict = {}
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                line = key_node.start_mark.line + 1
                try:
                    first = seen.get(key)
                    seen.setdefault(key, line)
                except TypeError:  # an unhashable key: PyYAML's own error names it
                    continue
                if first is not None:
                    raise StrictYAMLError(f"line {line}: the key {_short(key)!r} appears a second time in the "
                                          f"same section (first on line {first}); YAML would silently keep only "
                                          "the last one: merge the two into one")
        return super().construct_mapping(node, deep)

    def construct_yaml_int(self, node):
        text = self.construct_scalar(node)
        if len(text) > 100:  # (Python refuses to read more than 4300 digits, with a traceback)
            raise StrictYAMLError(f"line {node.start_mark.line + 1}: an integer of {len(text)} digits; no config "
                                  "field takes one that large")
        if text.startswith("0o"):
            return int(text[2:], 8)
        return int(text, 0) if text.startswith("0x") else int(text)

    def construct_yaml_float(self, node):
        text = self.construct_scalar(node).lower()
        return float(text.replace(".inf", "inf").replace(".nan", "nan"))


# YAML 1.2's int and float resolvers in place of 1.1's (which add octal 010, base 60, underscores)
_StrictLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers
            if tag not in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_StrictLoader.add_implicit_resolver("tag:yaml.org,2002:int", _INT_1_2, list("-+0123456789"))
_StrictLoader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_1_2, list("-+0123456789."))
_StrictLoader.add_constructor("tag:yaml.org,2002:int", _StrictLoader.construct_yaml_int)
_StrictLoader.add_constructor("tag:yaml.org,2002:float", _StrictLoader.construct_yaml_float)


def load(stream):
    """The YAML document in `stream` (text or a file), under the rules above."""
    return yaml.load(stream, Loader=_StrictLoader)


SHOWN_CHARS = 80


def _cut(text: str) -> str:
    """`text` cut to about SHOWN_CHARS characters in the middle, so that both ends stay readable: a path's
    file name is at its end, and a long temporary or home folder must not hide it."""
    if len(text) <= SHOWN_CHARS:
        return text
    head = SHOWN_CHARS // 2
    return text[:head] + "..." + text[-(SHOWN_CHARS - head - 3):]


def _short(value) -> str:
    return _cut(str(value))


def shown(value) -> str:
    """repr(value) for an error message, cut to about SHOWN_CHARS characters (its start and its end): a
    value may be megabytes long (a pasted file, a --set of generated text) and the message must stay one
    short line."""
    if isinstance(value, (list, dict, tuple)) and len(value) > SHOWN_CHARS:
        return f"a {type(value).__name__} of {len(value)} items"
    try:
        text = repr(value)
    except ValueError:  # an integer of more than 4300 digits (Python's limit on printing one)
        return f"an integer of {value.bit_length()} bits"
    return _cut(text)
