"""The source of an exported model file: the block library cut down to what one network uses.

`spaces/network.py` holds every block of the search space; an exported file should read like the
challenge's model files, one page with the classes of its own network. Which definitions a network
uses is observed, not declared: its construction and one forward pass are traced (`used_definitions`),
so the cut follows whatever the library looks like (plain classes, a dispatch dict, a registry).
`prune_source` then keeps those top-level definitions, the constants and helpers they still name, and
takes out the dispatch branches that only lead to definitions left out (`if name == "esa": return ESA(...)`).
"""

from __future__ import annotations

import ast
import os
import sys
from types import ModuleType
from typing import Callable

from torch import nn

_DEFINITIONS = (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)


def used_definitions(build: Callable[[], nn.Module], *, module: ModuleType) -> set[str]:
    """Top-level names of `module` whose code runs while `build()` makes and runs a network, and the classes
    of the network's modules that `module` defines."""
    filename = os.path.realpath(module.__file__)
    names: set[str] = set()

    def profile(frame, event, arg) -> None:
        if event == "call" and os.path.realpath(frame.f_code.co_filename) == filename:
            names.add(frame.f_code.co_qualname.split(".")[0])

    previous = sys.getprofile()
    sys.setprofile(profile)
    try:
        model = build()
    finally:
        sys.setprofile(previous)
    names.update(type(m).__name__ for m in model.modules() if type(m).__module__ == module.__name__)
    return names


def prune_source(source: str, *, keep: set[str]) -> str:
    """`source` with only the top-level classes and functions in `keep`, plus every top-level definition the
    kept code still names; constants and imports stay when the kept code names them, other statements stay.

    Inside kept code, an `if` without `else` whose condition or body names a left-out class or function is
    removed: `keep` came from tracing, so the traced network never took it (else that definition would
    have run). Entries of a top-level dict literal whose value is a left-out definition are removed too.
    """
    tree = ast.parse(source)
    lines = source.splitlines(keepends=True)
    definitions = {node.name for node in tree.body if isinstance(node, _DEFINITIONS)}
    constants = {name for node in tree.body for name in _assigned(node)}
    kept = keep & definitions
    while True:
        left_out = definitions - kept
        texts = [_without_branches(node, lines, left_out=left_out) for node in tree.body]
        named = {name for node, text in zip(tree.body, texts) if _kept(node, kept)
                 for name in _loaded_names(text)}
        if named & (definitions | constants) <= kept:
            break
        kept |= named & (definitions | constants)
    pieces = [(node, text) for node, text in zip(tree.body, texts) if _kept(node, kept)
              and not (isinstance(node, (ast.Import, ast.ImportFrom)) and not _imported(node) & named)]
    return _join(pieces)


def _defines(node: ast.stmt) -> set[str]:
    """The top-level names a statement defines (classes, functions, assigned constants)."""
    return {node.name} if isinstance(node, _DEFINITIONS) else _assigned(node)


def _kept(node: ast.stmt, kept: set[str]) -> bool:
    """Statements that define nothing (imports, expressions) are kept here; imports are filtered later."""
    return not _defines(node) or bool(_defines(node) & kept)


def _assigned(node: ast.stmt) -> set[str]:
    targets = node.targets if isinstance(node, ast.Assign) else [node.target] \
        if isinstance(node, ast.AnnAssign) else []
    return {target.id for target in targets if isinstance(target, ast.Name)}


def _imported(node: ast.Import | ast.ImportFrom) -> set[str]:
    return {(alias.asname or alias.name).split(".")[0] for alias in node.names}


def _loaded_names(text: str) -> set[str]:
    return {node.id for node in ast.walk(ast.parse(text)) if isinstance(node, ast.Name)}


def _names_in(node: ast.AST) -> set[str]:
    return {sub.id for sub in ast.walk(node) if isinstance(sub, ast.Name)}


def _without_branches(node: ast.stmt, lines: list[str], *, left_out: set[str]) -> str:
    """The source lines of `node` (its decorators and the comments just above it included), less the
    branches and dict entries that lead only to `left_out` definitions."""
    start = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", []))]) - 1
    while start > 0 and lines[start - 1].lstrip().startswith("#"):
        start -= 1
    if isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict):
        pairs = [(k, v) for k, v in zip(node.value.keys, node.value.values)
                 if not (isinstance(v, ast.Name) and v.id in left_out)]
        if len(pairs) < len(node.value.keys):
            cut = ast.Assign(targets=node.targets, value=ast.Dict(keys=[k for k, _ in pairs],
                                                                  values=[v for _, v in pairs]), lineno=node.lineno)
            return "".join(lines[start:node.lineno - 1]) + ast.unparse(cut) + "\n"
    dropped: set[int] = set()
    for sub in ast.walk(node) if isinstance(node, _DEFINITIONS) else ():
        for body in (getattr(sub, "body", None), getattr(sub, "orelse", None)):
            if not isinstance(body, list):
                continue
            removable = [s for s in body if isinstance(s, ast.If) and not s.orelse and _names_in(s) & left_out]
            if removable and len(removable) < len(body):  # a body keeps one statement at least
                for branch in removable:
                    dropped.update(range(branch.lineno - 1, branch.end_lineno))
    return "".join(line for index, line in enumerate(lines[start:node.end_lineno], start=start)
                   if index not in dropped)


def _join(pieces: list[tuple[ast.stmt, str]]) -> str:
    """The kept statements, two blank lines around classes and functions, one between other groups."""
    out = ""
    previous: ast.stmt | None = None
    for node, text in pieces:
        text = text.strip("\n") + "\n"
        if previous is not None:
            wide = isinstance(node, _DEFINITIONS) or isinstance(previous, _DEFINITIONS)
            same_group = node.lineno == previous.end_lineno + 1
            out += "\n\n" if wide else "" if same_group else "\n"
        out += text
        previous = node
    return out
