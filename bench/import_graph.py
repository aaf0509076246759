"""The import graph of the dlrl_jax package, read from the source with `ast` (nothing is imported).

    python bench/import_graph.py [--arrows] [--json] [--package DIR]

Prints the number of modules and arrows, the circles (strongly connected components of more than one
module) and the upward arrows (a module importing a package above its own in the layout, LAYERS below).

What counts as an arrow, from module A to module B: every `import dlrl_jax...` / `from dlrl_jax...
import ...` / relative import written in A, at module level ("load") or inside a function ("call": a
call-time import is still a dependency, it only defers a circle to the call). `from P import name`
points at the module P.name where that is a module, else at P. Imports under `if TYPE_CHECKING:` never
run; they are counted apart ("type") and are in no circle.

Two kinds of circle are reported:
- circles: strongly connected components of more than one module over the load and call arrows;
- load circles: over the load arrows plus the packages Python runs on the way (importing dlrl_jax.P.Q
  from outside P runs dlrl_jax/P/__init__.py first; from inside P it is already running; a folder
  without __init__.py, as training/, runs nothing). Those are the import-order hazards: a module met
  half-initialised. Call-time imports are left out here, as importing a package never runs them.
"""

import argparse
import ast
import json
import pathlib
import sys

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "dlrl_jax"

# The layout of README.md ("Layout"), lowest first: a module may import its own layer and those below.
# config/config_yaml (the application's settings) sit with app: below it, code takes plain values.
LAYERS = (
    ("config_error", "parallel", "folders"),
    ("models",),
    ("checkpoints", "data"),
    ("rollout", "rewards", "objectives"),
    ("tasks",),
    ("training", "protocols"),
    ("app", "config", "config_yaml"),
    ("cli",),
)
RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names}


def _modules(root):
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _is_type_checking(test):
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree, module, is_package):
    """(target dotted name, kind) for every dlrl_jax import; kind is load, call or type."""
    out = []

    def visit(node, kind):
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.body:
                visit(child, "type")
            for child in node.orelse:
                visit(child, kind)
            return
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)) and kind == "load":
            kind = "call"
        if isinstance(node, ast.Import):
            out.extend((alias.name, kind) for alias in node.names if alias.name.split(".")[0] == "dlrl_jax")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[:len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            if source.split(".")[0] == "dlrl_jax":
                out.extend((f"{source}.{alias.name}", kind, source) for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child, kind)

    visit(tree, "load")
    return out


def _resolve(name, modules):
    while name not in modules:
        name = name.rsplit(".", 1)[0]
    return name


def build(root=PACKAGE):
    """{module: path}, the written arrows as {(A, B): kind} (kind the strongest of load > call > type) and
    the package runs {(A, P)}: A's load-time imports run P/__init__.py on the way."""
    modules = _modules(root)
    strength = {"type": 0, "call": 1, "load": 2}
    arrows, runs = {}, set()

    for module, path in modules.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        for entry in _imports(tree, module, path.name == "__init__.py"):
            target = _resolve(entry[0], modules) if len(entry) == 2 else (
                entry[0] if entry[0] in modules else _resolve(entry[2], modules))
            kind = entry[1]
            if module != target and strength[kind] > strength.get(arrows.get((module, target)), -1):
                arrows[(module, target)] = kind
            parts = target.split(".")
            for i in range(2, len(parts)):   # the packages Python runs on the way (not dlrl_jax itself)
                parent = ".".join(parts[:i])
                if kind == "load" and parent in modules and not (module == parent or module.startswith(parent + ".")):
                    runs.add((module, parent))
    return modules, arrows, runs


def circles(modules, pairs):
    """Strongly connected components of more than one module over the arrows `pairs` (Tarjan)."""
    graph = {m: [] for m in modules}
    for a, b in sorted(pairs):
        graph[a].append(b)
    index, low, stack, on_stack, found = {}, {}, [], set(), []
    sys.setrecursionlimit(10000)

    def connect(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return sorted(found)


def _top(module):
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "dlrl_jax"


def upward(arrows):
    return sorted((a, b, kind) for (a, b), kind in arrows.items()
                  if RANK.get(_top(b), -1) > RANK.get(_top(a), len(LAYERS)))


def _config_sections(modules):
    """The field names of dlrl_jax.config.Config (its sections and the seed), read from its class body."""
    if "dlrl_jax.config" not in modules:
        return set()
    tree = ast.parse(modules["dlrl_jax.config"].read_text())
    body = next(node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == "Config").body
    return {node.target.id for node in body if isinstance(node, ast.AnnAssign)}


def settings_entered(modules, arrows, settings="dlrl_jax.config"):
    """The modules below the application (outside app/, cli and config) that the whole run configuration
    reaches: they import dlrl_jax.config, or read `<x>.cfg.<section>` / `cfg.<section>` of a Config."""
    sections = _config_sections(modules)
    found = {a for (a, b), kind in arrows.items() if b == settings and kind != "type"}
    for module, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in sections:
                inner = node.value
                if (isinstance(inner, ast.Name) and inner.id == "cfg") or (
                        isinstance(inner, ast.Attribute) and inner.attr == "cfg"):
                    found.add(module)
                    break
    return sorted(m for m in found if _top(m) not in ("app", "cli", "config"))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arrows", action="store_true", help="list every arrow")
    parser.add_argument("--json", action="store_true", help="print the numbers as one JSON line")
    parser.add_argument("--package", default=str(PACKAGE), help="the dlrl_jax folder to read (another checkout's)")
    args = parser.parse_args(argv)
    modules, arrows, runs = build(pathlib.Path(args.package))
    kinds = [kind for kind in arrows.values()]
    found = circles(modules, [pair for pair, kind in arrows.items() if kind != "type"])
    at_load = circles(modules, [pair for pair, kind in arrows.items() if kind == "load"] + sorted(runs))
    up, config_users = upward(arrows), settings_entered(modules, arrows)
    summary = {"modules": len(modules), "arrows": len(arrows), "load": kinds.count("load"),
               "call": kinds.count("call"), "type_only": kinds.count("type"), "circles": len(found),
               "modules_in_circles": sum(len(c) for c in found), "load_circles": len(at_load),
               "upward": len(up), "settings_entered_below_app": len(config_users)}
    if args.json:
        print(json.dumps(summary))
        return
    print(f"{summary['modules']} modules, {summary['arrows']} arrows ({summary['load']} at load, "
          f"{summary['call']} on call, {summary['type_only']} type-only)")
    print(f"{len(found)} circles ({summary['modules_in_circles']} modules):")
    for component in found:
        print("  " + " <-> ".join(m.removeprefix("dlrl_jax.") for m in component))
    print(f"{len(at_load)} load circles (package __init__ runs included):")
    for component in at_load:
        print("  " + " <-> ".join(m.removeprefix("dlrl_jax.") for m in component))
    print(f"{len(up)} upward arrows:")
    for a, b, kind in up:
        print(f"  {a.removeprefix('dlrl_jax.')} -> {b.removeprefix('dlrl_jax.')} ({kind})")
    print(f"{len(config_users)} modules below app/ that the whole Config enters (import or cfg.<section>):")
    for module in config_users:
        print("  " + module.removeprefix("dlrl_jax."))
    if args.arrows:
        for (a, b), kind in sorted(arrows.items()):
            print(f"{a} -> {b} ({kind})")


if __name__ == "__main__":
    main()
