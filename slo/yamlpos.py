"""YAML loading that remembers where each value came from, so validation errors can name file, field
path and line. PyYAML's composer keeps node positions; we turn nodes into plain Python values and keep a
side table from field path to line number. Duplicate keys, which PyYAML would silently overwrite, are
reported as errors."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from slo.errors import SloError

Path_ = tuple[str | int, ...]


def format_path(path: Path_) -> str:
    """('spec', 'objectives', 0, 'target') -> 'spec.objectives[0].target'."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out or "<document>"


@dataclass
class Document:
    """One YAML document: its value and the line (1-based) of every field path in it."""

    value: Any
    lines: dict[Path_, int] = field(default_factory=dict)
    duplicate_keys: list[tuple[Path_, int]] = field(default_factory=list)

    def line(self, path: Path_) -> int | None:
        """Line of the field, or of its nearest ancestor that exists (a missing field's parent)."""
        while True:
            if path in self.lines:
                return self.lines[path]
            if not path:
                return None
            path = path[:-1]


class YamlSyntaxError(SloError, ValueError):
    def __init__(self, file: str, line: int | None, message: str) -> None:
        self.file, self.line, self.message = file, line, message
        super().__init__(f"{file}:{line or '?'}: invalid YAML: {message}")


def _convert(node: yaml.Node, path: Path_, doc: Document) -> Any:
    doc.lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node.value)
            child = (*path, key)
            if key in out:
                doc.duplicate_keys.append((child, key_node.start_mark.line + 1))
            out[key] = _convert(value_node, child, doc)
            doc.lines[child] = key_node.start_mark.line + 1
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_convert(item, (*path, i), doc) for i, item in enumerate(node.value)]
    # Scalars: let PyYAML's safe constructor resolve the tag (int, float, bool, null, str).
    return _SCALAR_LOADER.construct_object(node, deep=True)


_SCALAR_LOADER = yaml.SafeLoader("")


def load_documents(path: Path) -> list[Document]:
    """Every YAML document in the file, with positions. Raises YamlSyntaxError on broken YAML."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise YamlSyntaxError(
            str(path), line, f"not UTF-8 text (byte 0x{raw[exc.start]:02x}); save the file as UTF-8"
        ) from None
    try:
        nodes = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise YamlSyntaxError(str(path), mark.line + 1 if mark else None, str(exc.problem or exc)) from None
    except yaml.YAMLError as exc:
        raise YamlSyntaxError(str(path), None, str(exc)) from None
    docs = []
    for node in nodes:
        if node is None:
            continue
        doc = Document(value=None)
        try:
            doc.value = _convert(node, (), doc)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            raise YamlSyntaxError(str(path), mark.line + 1 if mark else None, str(exc.problem)) from None
        docs.append(doc)
    return docs
