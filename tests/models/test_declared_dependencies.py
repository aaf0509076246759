"""Every third-party import the package makes is a declared dependency: module-level imports are
runtime dependencies of pyproject.toml, imports inside functions (lazy) may come from an optional
extra. Import names map to distributions through importlib.metadata.packages_distributions()."""

import ast
import importlib.metadata
import pathlib
import re
import sys
import tomllib

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0].strip().lower().replace("_", "-").replace(".", "-")


def _declared():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = {_name(r) for r in project["dependencies"]}
    extras = {_name(r) for reqs in project["optional-dependencies"].values() for r in reqs}
    return runtime, extras


def _imports():
    """(import root, file, module-level?) of every absolute third-party import under dlrl_jax/."""
    for path in sorted((ROOT / "dlrl_jax").rglob("*.py")):
        tree = ast.parse(path.read_text())
        top = {id(node) for node in tree.body}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module]
            else:
                continue
            for name in names:
                root = name.split(".")[0]
                # the sandbox's child programs run as scripts beside each other: child_* are their siblings
                sibling = root.startswith("child_") and (path.parent / f"{root}.py").is_file()
                if root != "dlrl_jax" and root not in sys.stdlib_module_names and not sibling:
                    yield root, path.relative_to(ROOT), id(node) in top


def test_every_import_is_declared_and_extras_are_imported_lazily():
    runtime, extras = _declared()
    distributions = importlib.metadata.packages_distributions()
    problems = []
    seen = set()
    for root, path, module_level in _imports():
        seen.add(root)
        names = {_name(d) for d in distributions.get(root, [root])}
        if names & runtime:
            continue
        if names & extras and not module_level:
            continue
        problems.append(f"{path}: import {root} ({'/'.join(sorted(names))}) is "
                        + ("an extra imported at module level" if names & extras else "not declared"))
    assert not problems, problems
    assert {"jax", "flax", "transformers", "safetensors", "ml_dtypes", "yaml"} <= seen  # the walk sees the package


def test_chat_templates_have_their_renderer_declared():
    # transformers renders chat templates with jinja2 but does not require it; every paper config's
    # task.prompt_style: chat needs it at run time.
    runtime, _ = _declared()
    assert "jinja2" in runtime
    assert "torch" not in runtime and "peft" not in runtime  # test oracles only
