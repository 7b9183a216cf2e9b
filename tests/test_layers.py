"""The library's layers: each module imports only from below it. No import cycle, including the
imports hidden inside functions (a cycle there works until someone moves the import up)."""
import ast

from divcoeff.codeversion import ROOT, _imports

LOW_LEVEL = ["divcoeff.io", "divcoeff.seeding", "divcoeff.config", "divcoeff.settings", "divcoeff.images"]


def import_graph(annotations: bool = False) -> dict[str, set[str]]:
    """module -> the divcoeff modules it imports; with `annotations`, also those imported for type
    annotations only (under ``if TYPE_CHECKING:``)."""
    graph = {}
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT.parent).with_suffix("")
        parts = list(rel.parts)
        is_package = parts[-1] == "__init__"
        name = ".".join(parts[:-1] if is_package else parts)
        tree = ast.parse(path.read_text())
        found = _imports(tree if annotations else _without_type_checking(tree), name, is_package)
        # `from divcoeff.x import y` names divcoeff.x.y, which is a module only if it exists
        graph[name] = {m for m in found if m != name and (_exists(m))}
    return graph


def _without_type_checking(tree: ast.Module) -> ast.Module:
    """Imports under `if TYPE_CHECKING:` are for annotations only: they never run."""
    for node in ast.walk(tree):
        for field in ("body", "orelse"):
            block = getattr(node, field, None)
            if isinstance(block, list):
                setattr(node, field, [n for n in block if not (isinstance(n, ast.If) and "TYPE_CHECKING" in
                                                               ast.unparse(n.test))])
    return tree


def _exists(module: str) -> bool:
    base = ROOT.parent.joinpath(*module.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def test_no_import_cycle_among_modules():
    graph = import_graph()
    # A package's __init__ re-exporting its modules is not a layer: look through it.
    def edges(m):
        return {d for d in graph.get(m, ()) if not (m.startswith(d + ".") and (ROOT.parent / d.replace(".", "/")).is_dir())}

    state, stack = {}, []

    def visit(m):
        state[m] = "open"
        stack.append(m)
        for d in edges(m):
            if state.get(d) == "open":
                cycle = stack[stack.index(d):] + [d]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if d not in state:
                visit(d)
        stack.pop()
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m)


def test_no_two_modules_import_each_other_not_even_for_annotations():
    """Two modules that need each other are one module in two files: whoever reads one must read the
    other. An import for annotations only counts too (task2vec.embedding and fisher_exact once
    imported each other that way, the settings of one declared again in the other). A package's
    __init__ handing on its own modules is not such a pair."""
    graph = import_graph(annotations=True)

    def nested(a, b):
        return a.startswith(b + ".") or b.startswith(a + ".")

    pairs = sorted({tuple(sorted((a, b))) for a, deps in graph.items() for b in deps
                    if a in graph.get(b, ()) and not nested(a, b)})
    assert not pairs, f"modules that import each other: {pairs}"


def test_the_lowest_layers_import_no_stage():
    graph = import_graph()
    for m in LOW_LEVEL:
        stages = {d for d in graph[m] if d not in LOW_LEVEL and d != "divcoeff"}
        assert not stages, f"{m} imports {sorted(stages)}: it must stay below every stage"
    # the checkpoint loader sits below the stages that use it, not on top of the data views
    assert not any(d.startswith(("divcoeff.data", "divcoeff.task2vec", "divcoeff.fewshot", "divcoeff.training"))
                   for d in graph["divcoeff.checkpoints"]), graph["divcoeff.checkpoints"]


def test_no_cycle_between_packages():
    """divcoeff.models, divcoeff.data, ... as layers: a module of one may not need a module of a
    package that needs it back (models.probes once imported checkpoints, which imports models)."""
    def unit(m):
        return ".".join(m.split(".")[:2])

    graph = {}
    for m, deps in import_graph().items():
        graph.setdefault(unit(m), set()).update(unit(d) for d in deps if unit(d) != unit(m) and d != "divcoeff")
    state = {}

    def visit(u, path):
        state[u] = "open"
        for d in sorted(graph.get(u, ())):
            if state.get(d) == "open":
                raise AssertionError("package cycle: " + " -> ".join(path[path.index(d):] + [d]))
            if d not in state:
                visit(d, path + [d])
        state[u] = "done"

    for u in sorted(graph):
        if u not in state:
            visit(u, [u])
