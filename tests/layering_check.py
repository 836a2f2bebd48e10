"""The layering checker ``tests/test_layering.py`` runs: imports only go down, never sideways, and never in a circle.

The checker is stdlib only (``ast`` + ``pathlib``): it parses every ``.py`` file under a package root
and never imports the package, so it also works on a half-restructured or broken tree.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

PACKAGE = "trainlab"
PACKAGE_ROOT = Path(__file__).resolve().parents[1] / PACKAGE

# The layer table, bottom to top; documented in docs/architecture.md (keep the two in sync).
# A module may import modules of strictly lower layers and of its own unit (the first dotted component after
# ``trainlab.``). Units in the same layer are siblings and must not import each other. "<package>" is
# ``trainlab/__init__.py`` itself: the top, importable only by ``trainlab.__main__``.
LAYERS = [
    ("registry", "version", "atomic"),
    ("config",),
    ("data", "models", "optim", "losses"),
    ("engine",),
    ("rundir",),
    ("inference", "weights", "inspect"),
    ("session",),
    ("run",),
    ("report", "export"),
    ("training",),
    ("experiments",),
    ("api", "nn"),  # nn: the from-scratch layers, a public facade like api
    ("cli",),
    ("__main__", "<package>"),  # "<package>" = trainlab/__init__.py itself, the top
]

TOP = "<package>"
# Same-layer imports that are allowed anyway: ``python -m trainlab`` runs the package's public entry point.
ALLOWED_SIDEWAYS = {("__main__", TOP)}


@dataclass(frozen=True)
class ImportEdge:
    """One import statement of a trainlab module, resolved to the module it loads."""

    source: str  # dotted name of the importing module
    target: str  # dotted name of the imported trainlab module (or package)
    path: str  # "trainlab/x/y.py", for messages
    lineno: int
    names: tuple[str, ...] = ()  # for ``from X import a, b``: the names taken from a non-module target


@dataclass
class LayeringReport:
    modules: dict[str, str] = field(default_factory=dict)  # dotted name -> display path
    edges: list[ImportEdge] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)  # upward / sideways imports
    cycles: list[list[str]] = field(default_factory=list)  # each: [a, b, ..., a]
    cycle_messages: list[str] = field(default_factory=list)
    unplaced: list[str] = field(default_factory=list)  # messages for modules of no layer
    errors: list[str] = field(default_factory=list)  # unparsable files, impossible relative imports

    @property
    def problems(self) -> list[str]:
        return [*self.errors, *self.violations, *self.cycle_messages, *self.unplaced]

    def format(self) -> str:
        problems = self.problems
        if not problems:
            return "layering OK"
        head = (
            f"{len(problems)} layering problem(s): {len(self.violations)} upward/sideways import(s), "
            f"{len(self.cycles)} import cycle(s), {len(self.unplaced)} module(s) in no layer, "
            f"{len(self.errors)} other error(s). Layers are in LAYERS in tests/layering_check.py "
            f"(documented in docs/architecture.md)."
        )
        return "\n".join([head, *problems])


def unit_of(module: str, package: str = PACKAGE) -> str:
    """``trainlab.engine.callbacks.base`` -> ``engine``; the top package itself -> ``<package>``."""
    parts = module.split(".")
    if parts == [package]:
        return TOP
    assert parts[0] == package and len(parts) > 1, module
    return parts[1]


def module_name(path: Path, root: Path, package: str = PACKAGE) -> str:
    """Dotted module name of a file under ``root``: ``x/__init__.py`` -> ``trainlab.x``."""
    rel = path.relative_to(root).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join([package, *parts])


def _resolve(name: str, modules: dict[str, str], package: str) -> str:
    """The module a dotted trainlab name loads: itself if it is a file of the tree, else its longest prefix that
    is one (but never the bare top package, for a missing submodule), else the name unchanged."""
    if name in modules or name == package:
        return name
    parts = name.split(".")
    for n in range(len(parts) - 1, 1, -1):
        prefix = ".".join(parts[:n])
        if prefix in modules:
            return prefix
    return name


def _is_ours(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def _imports_of(
    tree: ast.AST, source: str, is_package: bool, path: str, modules: dict[str, str], package: str
) -> tuple[list[ImportEdge], list[str]]:
    """Every trainlab import anywhere in a module: top level, in functions/classes, under ``if TYPE_CHECKING:``,
    in ``try`` blocks, plus ``importlib.import_module("trainlab...")`` with a literal name."""
    edges: list[ImportEdge] = []
    errors: list[str] = []

    def add(target: str, lineno: int, names: tuple[str, ...] = ()) -> None:
        edges.append(ImportEdge(source, _resolve(target, modules, package), path, lineno, names))

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if _is_ours(alias.name, package):
                    add(alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                # Relative: the current package is the module itself for __init__.py, else its parent.
                pkg_parts = source.split(".") if is_package else source.split(".")[:-1]
                up = node.level - 1
                if up >= len(pkg_parts):
                    errors.append(
                        f"{path}:{node.lineno} has a relative import ({'.' * node.level}{node.module or ''}) "
                        f"that goes above the top package {package!r}: use an absolute import"
                    )
                    continue
                base_parts = pkg_parts[: len(pkg_parts) - up]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            if not _is_ours(base, package):
                continue
            plain: list[str] = []
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                if alias.name != "*" and candidate in modules:
                    add(candidate, node.lineno)  # ``from trainlab.x import y`` where y is a module
                else:
                    plain.append(alias.name)
            if plain:
                add(base, node.lineno, tuple(plain))
        elif isinstance(node, ast.Call):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if (
                called == "import_module"
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
                and _is_ours(node.args[0].value, package)
            ):
                add(node.args[0].value, node.lineno)
    return edges, errors


def collect_imports(root: Path, package: str = PACKAGE) -> tuple[dict[str, str], list[ImportEdge], list[str]]:
    """Parse every ``.py`` file under ``root`` (the package directory). Returns (modules: dotted name ->
    display path, import edges, errors)."""
    root = Path(root)
    files = sorted(p for p in root.rglob("*.py") if p.is_file())
    modules = {module_name(p, root, package): f"{package}/{p.relative_to(root).as_posix()}" for p in files}
    edges: list[ImportEdge] = []
    errors: list[str] = []
    for p in files:
        name = module_name(p, root, package)
        display = modules[name]
        try:
            tree = ast.parse(p.read_text(encoding="utf-8"), filename=str(p))
        except (SyntaxError, UnicodeDecodeError, ValueError) as exc:
            line = getattr(exc, "lineno", None) or 0
            errors.append(f"{display}:{line} cannot be parsed ({type(exc).__name__}: {exc}); fix the file first")
            continue
        found, errs = _imports_of(tree, name, p.name == "__init__.py", display, modules, package)
        edges.extend(e for e in found if e.target != name)  # a module importing itself is no dependency
        errors.extend(errs)
    edges = sorted(set(edges), key=lambda e: (e.path, e.lineno, e.target))
    return modules, edges, errors


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Import cycles as ``[a, b, ..., a]``: in every strongly connected group of modules, the shortest cycle
    through each member (so every module caught in a cycle shows up in at least one), without duplicates, each
    written from its alphabetically first module."""
    nodes = sorted(set(graph) | {t for ts in graph.values() for t in ts})

    def reachable(start: str) -> set[str]:
        seen: set[str] = set()
        todo = [start]
        while todo:
            for nxt in graph.get(todo.pop(), ()):
                if nxt not in seen:  # ``start`` ends up in ``seen`` only when it lies on a cycle
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    def shortest_cycle(start: str, group: set[str]) -> list[str]:
        parent: dict[str, str] = {}
        frontier = [start]
        while frontier:
            next_frontier = []
            for cur in frontier:
                for nxt in sorted(graph.get(cur, ())):
                    if nxt not in group:
                        continue
                    if nxt == start:
                        path = [cur]
                        while path[-1] != start:
                            path.append(parent[path[-1]])
                        return [*reversed(path), start]
                    if nxt not in parent:
                        parent[nxt] = cur
                        next_frontier.append(nxt)
            frontier = next_frontier
        raise AssertionError(f"{start} is on no cycle")

    reach = {n: reachable(n) for n in nodes}
    done: set[str] = set()
    seen_cycles: set[frozenset[tuple[str, str]]] = set()
    cycles: list[list[str]] = []
    for n in nodes:
        if n in done or n not in reach[n]:
            continue
        group = {m for m in reach[n] if n in reach[m]}
        done |= group
        for member in sorted(group):
            cycle = shortest_cycle(member, group)
            key = frozenset(zip(cycle, cycle[1:]))
            if key in seen_cycles:
                continue
            seen_cycles.add(key)
            first = cycle.index(min(cycle))
            cycles.append([*cycle[first:-1], *cycle[:first], cycle[first]])
    return cycles


def check_layering(root: Path, package: str = PACKAGE, layers: list[tuple[str, ...]] = LAYERS) -> LayeringReport:
    """Check the package at ``root`` against ``layers``; see the module docstring and LAYERS."""
    modules, edges, errors = collect_imports(root, package)
    report = LayeringReport(modules=modules, edges=edges, errors=errors)
    layer_of = {unit: i for i, units in enumerate(layers) for unit in units}

    for name, path in sorted(modules.items()):
        unit = unit_of(name, package)
        if unit not in layer_of:
            report.unplaced.append(
                f"{path}: module {name} belongs to no layer (unit {unit!r} is not in LAYERS): move it into an "
                f"existing unit, or add {unit!r} to LAYERS in tests/layering_check.py and docs/architecture.md"
            )

    for e in edges:
        su, tu = unit_of(e.source, package), unit_of(e.target, package)
        if su == tu or su not in layer_of:  # own unit, or the source is already reported as unplaced
            continue
        if tu not in layer_of:
            if e.target not in modules:  # an existing target is reported as unplaced on its own
                report.violations.append(
                    f"{e.path}:{e.lineno} imports {e.target} (unit {tu!r} is in no layer and not in the tree): "
                    f"import it from its new home"
                )
            continue
        ls, lt = layer_of[su], layer_of[tu]
        if lt < ls or (su, tu) in ALLOWED_SIDEWAYS:
            continue
        if lt > ls:
            hint = (
                f"{e.source} is in layer {ls} and may import only its own unit and layers below {ls}, but "
                f"{tu!r} is layer {lt}; move the shared code down to layer {ls} or lower, or pass it in from above"
            )
            where = "above"
        else:
            hint = (
                f"{su!r} and {tu!r} are siblings in layer {ls} ({', '.join(layers[ls])}) and must not import each "
                f"other; move the shared code down into a lower layer"
            )
            where = "beside"
        if e.target == package:
            what = ", ".join(e.names) if e.names else "it"
            hint += f"; import {what} from the defining submodule instead of the top package (e.g. trainlab.version)"
        report.violations.append(f"{e.path}:{e.lineno} imports {e.target} (layer {tu!r} is {where} {su!r}): {hint}")

    graph: dict[str, set[str]] = {name: set() for name in modules}
    first_edge: dict[tuple[str, str], ImportEdge] = {}
    for e in edges:
        if e.target in modules:
            graph[e.source].add(e.target)
            first_edge.setdefault((e.source, e.target), e)
    report.cycles = find_cycles(graph)
    for cycle in report.cycles:
        steps = [first_edge[(a, b)] for a, b in zip(cycle, cycle[1:])]
        where = ", ".join(f"{s.path}:{s.lineno} imports {s.target}" for s in steps)
        report.cycle_messages.append(
            f"import cycle: {' -> '.join(cycle)} ({where}): break it by moving the shared code into a module "
            f"that none of them imports, or by inverting one import"
        )
    return report
