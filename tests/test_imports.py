"""The package has no import cycles, counting every import: at module level and inside
functions (a lazy import only delays a cycle; it does not remove the knot in the structure).

Each `offline_moe/**/*.py` file is parsed with `ast` (nothing is imported). `import a.b.c` is an
edge to the module a.b.c (for a package, its `__init__`); `from a.b import c` is an edge to the
module a.b.c when there is one, else to a.b; relative imports are resolved against the file's
package; `importlib.import_module("a.b")` with a literal name counts as `import a.b`. A cycle
fails the test, named module by module; so does an import against the layering (`FORBIDDEN`).
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = "offline_moe"
ROOT = Path(__file__).resolve().parents[1] / PACKAGE


def module_files(root: Path = ROOT) -> dict[str, Path]:
    """{'offline_moe.envs.atari': path, 'offline_moe.envs': path of its __init__, ...}."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _packages(modules) -> set[str]:
    """Every dotted prefix of a module (packages, namespace packages included)."""
    return {".".join(m.split(".")[:i]) for m in modules for i in range(1, m.count(".") + 1)}


def imports_of(name: str, path: Path, modules, packages) -> set[str]:
    """The package modules that module `name` (file `path`) imports, anywhere in the file."""
    is_package = path.name == "__init__.py"
    here = name if is_package else name.rpartition(".")[0]
    known = set(modules) | packages

    def resolve(target: str) -> str | None:
        while target and target not in known:  # `import a.b.attr`-style leftovers
            target = target.rpartition(".")[0]
        return target or None

    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == PACKAGE:
                    out.add(resolve(alias.name))
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and str(node.args[0].value).split(".")[0] == PACKAGE
        ):  # importlib.import_module("offline_moe.x"): an import by another name
            out.add(resolve(node.args[0].value))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here.split(".")[: len(here.split(".")) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            if source.split(".")[0] != PACKAGE:
                continue
            for alias in node.names:
                sub = f"{source}.{alias.name}"
                out.add(sub if sub in known else resolve(source))
    out.discard(None)
    out.discard(name)
    return {m for m in out if m in modules}  # namespace packages (no __init__) run no code


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    modules = module_files(root)
    packages = _packages(modules)
    return {name: imports_of(name, path, modules, packages) for name, path in modules.items()}


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (a -> b -> ... -> a) per strongly connected component with more than one
    module (Tarjan's algorithm, iterative)."""
    index, low, on_stack, stack, comps = {}, {}, set(), [], []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    comp.add(member)
                    if member == node:
                        break
                if len(comp) > 1:
                    comps.append(comp)
    return [_cycle_in(graph, comp) for comp in comps]


def _cycle_in(graph, comp: set[str]) -> list[str]:
    """A shortest cycle through the component's first module (breadth-first)."""
    start = min(comp)
    parent = {start: None}
    frontier = [start]
    while frontier:
        nxt = []
        for node in frontier:
            for child in sorted(graph[node] & comp):
                if child == start:
                    path = [node]
                    while parent[path[-1]] is not None:
                        path.append(parent[path[-1]])
                    return [*reversed(path), start]
                if child not in parent:
                    parent[child] = node
                    nxt.append(child)
        frontier = nxt
    raise AssertionError(f"no cycle in component {sorted(comp)}")


def test_finder_sees_lazy_relative_and_package_imports(tmp_path):
    pkg = tmp_path / PACKAGE
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("from .a import x\n")
    (pkg / "sub" / "a.py").write_text("def f():\n    from offline_moe import b\n")
    (pkg / "b.py").write_text("import offline_moe.sub\n")
    (pkg / "c.py").write_text("from offline_moe.sub import a\n")
    (pkg / "d.py").write_text("import importlib\nimportlib.import_module('offline_moe.c')\n")
    graph = import_graph(pkg)
    assert graph["offline_moe.sub"] == {"offline_moe.sub.a"}
    assert graph["offline_moe.sub.a"] == {"offline_moe.b"}
    assert graph["offline_moe.b"] == {"offline_moe.sub"}
    assert graph["offline_moe.c"] == {"offline_moe.sub.a"}
    assert graph["offline_moe.d"] == {"offline_moe.c"}
    (cycle,) = find_cycles(graph)
    assert cycle == ["offline_moe.b", "offline_moe.sub", "offline_moe.sub.a", "offline_moe.b"]


def test_no_import_cycles():
    cycles = find_cycles(import_graph())
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


# Packages that must not import others (anywhere in the file), lowest layers first: replay
# caches and buffers know nothing of learners, training or data sources; the learners nothing
# of training runs; nothing below `launch` and `bench` launches or measures experiments (the
# analysis reads run directories, so it may read their layout in `train`).
FORBIDDEN = {
    "offline_moe.errors": ("offline_moe.",),
    "offline_moe.configs": ("offline_moe.learners", "offline_moe.train", "offline_moe.launch"),
    "offline_moe.replay": ("offline_moe.learners", "offline_moe.train", "offline_moe.data"),
    "offline_moe.learners": ("offline_moe.train", "offline_moe.launch", "offline_moe.bench"),
    "offline_moe.train": ("offline_moe.launch", "offline_moe.bench", "offline_moe.analysis"),
    "offline_moe.analysis": ("offline_moe.launch", "offline_moe.bench"),
    "offline_moe.launch": ("offline_moe.bench",),
}


def test_layering():
    bad = [
        f"{module} imports {target}"
        for module, targets in sorted(import_graph().items())
        for package, forbidden in FORBIDDEN.items()
        if module == package or module.startswith(package + ".")
        for target in sorted(targets)
        if target.startswith(forbidden)
    ]
    assert not bad, "imports against the layering:\n" + "\n".join(bad)


MAX_MODULE_LINES = 600


def test_no_module_over_600_lines():
    """A module that grows past 600 lines does more than one job: split it by job (as
    train/rundir.py -> rundir, lock, protocol) rather than raise the limit."""
    sizes = {name: len(path.read_text().splitlines()) for name, path in module_files().items()}
    assert sizes["offline_moe.train.loop"] > 50  # the walk reads real files
    big = {name: n for name, n in sorted(sizes.items()) if n > MAX_MODULE_LINES}
    assert not big, f"modules over {MAX_MODULE_LINES} lines: {big}"
