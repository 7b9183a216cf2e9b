"""A version of the code behind each stage, derived from the source, never bumped by hand.

Snakemake's own code trigger sees a rule's script, not the library it imports. So each rule
passes ``code_version(<the stage's entry modules>)`` as a param: a hash of every ``divcoeff``
module those entries import, directly or not, and its outputs record it. A change to that
code reruns the stage's jobs. The hash is taken over the modules' syntax trees with docstrings
removed, so editing a comment or a docstring reruns nothing.
"""
from __future__ import annotations

import ast
import functools
import hashlib
from pathlib import Path

PACKAGE = "divcoeff"
ROOT = Path(__file__).resolve().parent


def _module_file(name: str, root: Path) -> Path | None:
    """The file of module `name` (``divcoeff.a.b``) under `root` (the package folder), if any."""
    parts = name.split(".")
    if parts[0] != PACKAGE:
        return None
    base = root.joinpath(*parts[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imports(tree: ast.Module, name: str, is_package: bool) -> set[str]:
    """Every divcoeff module `tree` imports (absolute or relative, at any depth of the code)."""
    found = set()
    package = name if is_package else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{a.name}" for a in node.names)  # `from pkg import submodule`
    return {m for m in found if m == PACKAGE or m.startswith(PACKAGE + ".")}


@functools.cache
def _parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), str(path))


def _strip_docstrings(tree: ast.Module) -> ast.Module:
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
    return tree


def module_closure(*entries: str, root: Path = ROOT) -> dict[str, Path]:
    """The `entries` and every divcoeff module they import, transitively: name -> file."""
    seen: dict[str, Path] = {}
    todo = list(entries)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        path = _module_file(name, root)
        if path is None:
            continue
        seen[name] = path
        tree = _parse(path)
        todo.extend(_imports(tree, name, path.name == "__init__.py"))
        # Importing a.b.c runs a/__init__ and a/b/__init__ first.
        parts = name.split(".")
        todo.extend(".".join(parts[:i]) for i in range(1, len(parts)))
    return seen


@functools.cache
def code_version(*entries: str, root: Path = ROOT) -> str:
    """16 hex digits over the docstring-free syntax trees of the entries' import closure."""
    h = hashlib.sha256()
    for name, path in sorted(module_closure(*entries, root=root).items()):
        h.update(name.encode() + b"\0" + _code_digest(path) + b"\0")
    return h.hexdigest()[:16]


@functools.cache
def _code_digest(path: Path) -> bytes:
    tree = _strip_docstrings(ast.parse(path.read_text(encoding="utf-8"), str(path)))
    return hashlib.sha256(ast.dump(tree).encode()).digest()


# The library entry points of each rule's script: a change in their import closure reruns the rule.
# Downloads are left out on purpose: a fetched file is defined by its checksum, not by our code.
RULE_ENTRIES = {
    "render_glyphs": ("divcoeff.glyphs.build",),
    "montage": ("divcoeff.glyphs.montage",),
    "index_benchmark": ("divcoeff.readers",),
    "build_view": ("divcoeff.data.views", "divcoeff.selection"),
    "sample_episodes": ("divcoeff.data.episodes",),
    "train_checkpoint": ("divcoeff.training.run",),
    "diversity": ("divcoeff.task2vec.coefficient",),
    "train_probe": ("divcoeff.training.probe",),
    "domain_distances": ("divcoeff.domains",),
    "domain_heatmap": ("divcoeff.report.domain_plots",),
    "predicted_vs_measured": ("divcoeff.report.prediction",),
    "evaluate": ("divcoeff.fewshot", "divcoeff.checkpoints"),
    "summarize": ("divcoeff.report.summary",),
    "statistics": ("divcoeff.report.design", "divcoeff.report.paired", "divcoeff.report.within"),
    "plot": ("divcoeff.report.plots", "divcoeff.report.design"),
    "published_comparison": ("divcoeff.report.published", "divcoeff.report.plots"),
}


def rule_code_versions() -> dict[str, str]:
    return {rule: code_version(*entries) for rule, entries in RULE_ENTRIES.items()}
