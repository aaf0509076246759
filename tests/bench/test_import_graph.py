"""bench/import_graph.py: the package's import graph read from the source. On a small hand-made package
every arrow, circle and upward arrow is worked out by hand (below); on dlrl_jax itself the graph has no
circle of either kind, the state this branch reached (issue 30)."""

import importlib.util
import json
import os
import sys
import textwrap

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _graph_module():
    spec = importlib.util.spec_from_file_location("import_graph", os.path.join(ROOT, "bench", "import_graph.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules["import_graph"] = module
    spec.loader.exec_module(module)
    return module


# models.a and models.b import each other (b at load, a only inside a function); models.b also imports
# the application's config inside a function (upward); tasks.t imports config for a type only; the
# rewards package's __init__ imports config, and config imports rewards.r, which runs rewards/__init__
# first: a circle only at load. training/ has no __init__.py (it runs nothing) and reads cfg.task.
FILES = {
    "__init__.py": "",
    "models/__init__.py": "from dlrl_jax.models.a import f\n",
    "models/a.py": "def f():\n    from dlrl_jax.models import b\n    return b\n",
    "models/b.py": "from dlrl_jax.models.a import f\n\n\ndef g():\n    from dlrl_jax import config\n    return config\n",
    "tasks/__init__.py": "from dlrl_jax.tasks import t\n",
    "tasks/t.py": ("from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n    from dlrl_jax import config\n"
                   "from dlrl_jax.models.b import g\n"),
    "rewards/__init__.py": "from dlrl_jax import config\n",
    "rewards/r.py": "y = 1\n",
    "config.py": "from dlrl_jax.rewards.r import y\n\n\nclass Config:\n    task: int = 0\n    seed: int = 0\n",
    "training/x.py": "from dlrl_jax.tasks.t import g\n\n\ndef f(cfg):\n    return cfg.task\n",
}


def _package(tmp_path):
    for name, text in FILES.items():
        path = tmp_path / "dlrl_jax" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return tmp_path / "dlrl_jax"


def test_a_hand_made_package_gives_the_hand_worked_graph(tmp_path, capsys):
    graph = _graph_module()
    modules, arrows, runs = graph.build(_package(tmp_path))
    d = "dlrl_jax."
    assert sorted(modules) == sorted(["dlrl_jax"] + [d + m for m in (
        "models", "models.a", "models.b", "tasks", "tasks.t", "rewards", "rewards.r", "config", "training.x")])
    want = {("models", "models.a"): "load", ("models.a", "models.b"): "call", ("models.b", "models.a"): "load",
            ("models.b", "config"): "call", ("tasks", "tasks.t"): "load", ("tasks.t", "config"): "type",
            ("tasks.t", "models.b"): "load", ("rewards", "config"): "load", ("config", "rewards.r"): "load",
            ("training.x", "tasks.t"): "load"}
    assert arrows == {(d + a, d + b): kind for (a, b), kind in want.items()}
    # packages run on the way: from outside the package only, and never training/ (no __init__.py)
    assert runs == {(d + "tasks.t", d + "models"), (d + "config", d + "rewards"), (d + "training.x", d + "tasks")}
    graph.main(["--json", "--package", str(tmp_path / "dlrl_jax")])
    summary = json.loads(capsys.readouterr().out)
    assert summary == {"modules": 10, "arrows": 10, "load": 7, "call": 2, "type_only": 1, "circles": 1,
                       "modules_in_circles": 2, "load_circles": 1, "upward": 3, "settings_entered_below_app": 3}
    assert graph.circles(modules, [p for p, k in arrows.items() if k != "type"]) == [[d + "models.a", d + "models.b"]]
    load = [p for p, k in arrows.items() if k == "load"] + sorted(runs)
    assert graph.circles(modules, load) == [[d + "config", d + "rewards"]]
    assert graph.upward(arrows) == [(d + "models.b", d + "config", "call"), (d + "rewards", d + "config", "load"),
                                    (d + "tasks.t", d + "config", "type")]
    assert graph.settings_entered(modules, arrows) == [d + "models.b", d + "rewards", d + "training.x"]


def test_the_package_has_no_import_circle():
    graph = _graph_module()
    modules, arrows, runs = graph.build()
    assert graph.circles(modules, [p for p, k in arrows.items() if k != "type"]) == []
    assert graph.circles(modules, [p for p, k in arrows.items() if k == "load"] + sorted(runs)) == []
