"""Read YAML — a KPI header, a masking rule file — while remembering where every key and value stands in the file.

PyYAML's composed node tree carries marks (line and column) that the plain ``safe_load`` throws away. The
spec checker needs them so that each problem points at the exact key, as a compiler would. PyYAML also keeps
the last of two equal keys silently; here a duplicate key is a problem, because the first value would be lost.

Files come from pull requests, so reading one must stay cheap whatever it holds: before anything is built, the
tokens are scanned (linear, not recursive) and anchors and aliases are refused — a few hundred bytes of nested
aliases expand to gigabytes (measured: a 460-byte header took 4.5 minutes and 15 GB) and no header needs them —
as is nesting deeper than :data:`MAX_DEPTH`, which would exhaust Python's recursion in the composer. Characters
YAML refuses (a NUL byte) are reported at their position.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from pipeline.core.kpifile import CONTROL_HINT, control_character
from pipeline.errors import Location, Problem

KeyPath = tuple[str | int, ...]


@dataclass(frozen=True)
class Mark:
    """Where a key and its value start, as 1-based file lines and columns."""

    key_line: int
    key_col: int
    value_line: int
    value_col: int


@dataclass
class Header:
    """The header's data plus the position of every key path in it (``("columns", "sales", "type")``)."""

    path: str
    data: Any
    marks: dict[KeyPath, Mark] = field(default_factory=dict)
    first_line: int = 2
    spelt_null: set[KeyPath] = field(default_factory=set)  # values written `null` (an empty value is not)
    flow: set[KeyPath] = field(default_factory=set)  # mappings written inline, `{type: DATE}`

    def key_at(self, key_path: KeyPath) -> Location:
        """The location of a key (or of the header itself when the path is unknown)."""
        mark = self.marks.get(key_path)
        if mark is None:
            return self._fallback(key_path)
        return Location(self.path, mark.key_line, mark.key_col)

    def value_at(self, key_path: KeyPath) -> Location:
        """The location of a key's value; problems with a value point there."""
        mark = self.marks.get(key_path)
        if mark is None:
            return self._fallback(key_path)
        return Location(self.path, mark.value_line, mark.value_col)

    def _fallback(self, key_path: KeyPath) -> Location:
        # A missing key is reported where its parent stands, or at the header's first line.
        for cut in range(len(key_path) - 1, 0, -1):
            mark = self.marks.get(key_path[:cut])
            if mark is not None:
                return Location(self.path, mark.key_line, mark.key_col)
        return Location(self.path, self.first_line, 1)


MAX_DEPTH = 16  # mappings and lists inside each other; a KPI header needs 3, a masking rule file 6

_YAML_HINTS = {
    "cannot start any token": (
        'quote values that start with * & ! or %: schedule: "0 6 * * *"; indent with spaces, not tabs'
    ),
    "expected alphabetic or numeric character": 'a value starting with * is a YAML alias: quote it ("* 6 * * *")',
    "mapping values are not allowed here": "a value containing ': ' must be quoted, or a key is indented too far",
    "could not find expected ':'": "every line of the header is `key: value`; check the indentation of the lines above",
    "expected <block end>": "check the indentation: keys of one mapping start in the same column",
}


def parse(
    path: str,
    text: str,
    first_line: int,
    *,
    what: str = "header",
    syntax_hint: str = "fix the YAML syntax of the header",
) -> tuple[Header | None, list[Problem]]:
    """Parse YAML whose first line is file line ``first_line``; problems carry file positions. ``what`` names the
    document in messages; ``syntax_hint`` is the hint for a syntax error no specific hint covers."""
    try:
        loader = yaml.SafeLoader(text)
    except yaml.reader.ReaderError as error:  # a character YAML does not allow, found before any token
        return None, [_bad_character(path, text, first_line, error, what)]
    refused = _refusals(path, text, first_line, what)
    if refused:
        loader.dispose()
        return None, refused
    try:
        node = loader.get_single_node()
        header = Header(path, None, first_line=first_line)
        problems: list[Problem] = []
        if node is not None:
            header.data = _construct(loader, node, (), header, problems, what)
        return header, problems
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line, col = (mark.line + first_line, mark.column + 1) if mark else (first_line, 1)
        reason = error.problem or str(error)
        fallback = syntax_hint or f"fix the YAML syntax of the {what}"
        specific = _YAML_HINTS if what == "header" else {}  # their examples are header keys
        hint = next((h for key, h in specific.items() if key in reason), fallback)
        return None, [Problem(Location(path, line, col), "yaml-syntax", f"{what} is not valid YAML: {reason}", hint)]
    finally:
        loader.dispose()


def _refusals(path: str, text: str, first_line: int, what: str) -> list[Problem]:
    """Anchors, aliases and nesting past MAX_DEPTH, found by scanning the tokens; syntax errors are left to the
    parse, which reports them with their hints."""
    problems: list[Problem] = []
    depth = 0
    try:
        for token in yaml.scan(text, Loader=yaml.SafeLoader):
            mark = token.start_mark
            where = Location(path, mark.line + first_line, mark.column + 1)
            if isinstance(token, yaml.AnchorToken | yaml.AliasToken):
                problems.append(
                    Problem(
                        where,
                        "yaml-alias",
                        f"YAML {'anchors (&name)' if isinstance(token, yaml.AnchorToken) else 'aliases (*name)'} "
                        f"are not allowed in a {what}",
                        'write the value out; a value starting with * or & is text only when quoted ("*")',
                    )
                )
            elif isinstance(token, _OPENING):
                depth += 1
                if depth > MAX_DEPTH:
                    problems.append(
                        Problem(
                            where,
                            "yaml-too-deep",
                            f"the {what} nests mappings and lists more than {MAX_DEPTH} deep",
                            "flatten it: a header needs three levels (columns → name → type)",
                        )
                    )
                    break
            elif isinstance(token, _CLOSING):
                depth -= 1
    except yaml.YAMLError:
        pass  # a syntax error: the parse reports it, at its position, with its hint
    return problems


_OPENING = (
    yaml.BlockMappingStartToken,
    yaml.BlockSequenceStartToken,
    yaml.FlowMappingStartToken,
    yaml.FlowSequenceStartToken,
)
_CLOSING = (yaml.BlockEndToken, yaml.FlowMappingEndToken, yaml.FlowSequenceEndToken)


def _bad_character(path: str, text: str, first_line: int, error: yaml.reader.ReaderError, what: str) -> Problem:
    before = text[: error.position]
    line = before.count("\n") + first_line
    col = error.position - (before.rfind("\n") + 1) + 1
    code = error.character if isinstance(error.character, int) else ord(str(error.character)[:1] or "\0")
    return Problem(
        Location(path, line, col),
        "yaml-character",
        f"the {what} holds {control_character(code)}, which YAML does not allow",
        CONTROL_HINT,
    )


def _construct(
    loader: yaml.SafeLoader, node: yaml.Node, here: KeyPath, header: Header, problems: list[Problem], what: str
) -> Any:
    if isinstance(node, yaml.MappingNode):
        if node.flow_style:
            header.flow.add(here)
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            key_path = (*here, key if isinstance(key, str | int) else str(key))
            mark = Mark(
                key_node.start_mark.line + header.first_line,
                key_node.start_mark.column + 1,
                value_node.start_mark.line + header.first_line,
                value_node.start_mark.column + 1,
            )
            if key in result:
                problems.append(
                    Problem(
                        Location(header.path, mark.key_line, mark.key_col),
                        "duplicate-key",
                        f"key '{key}' appears twice in the {what}",
                        "keep one of them: YAML would silently drop the first value",
                    )
                )
            header.marks[key_path] = mark
            result[key] = _construct(loader, value_node, key_path, header, problems, what)
        return result
    if isinstance(node, yaml.SequenceNode):
        items = []
        for index, item_node in enumerate(node.value):
            start = item_node.start_mark
            line, col = start.line + header.first_line, start.column + 1
            header.marks[(*here, index)] = Mark(line, col, line, col)
            items.append(_construct(loader, item_node, (*here, index), header, problems, what))
        return items
    try:
        value = loader.construct_object(node, deep=True)
    except ValueError:
        # A scalar that looks like a timestamp but is not one (2024-13-01) stays text, so that the checker can
        # report it as an invalid date at its position instead of YAML crashing.
        return loader.construct_scalar(node)  # type: ignore[arg-type]
    if value is None and isinstance(node, yaml.ScalarNode) and node.value.lower() == "null":
        header.spelt_null.add(here)
    return value
