"""The package's architecture, read from its imports: no import cycle, the library imports none of the
application, and `import maml_tf` leaves TensorFlow unloaded."""

import ast
import os
import subprocess
import sys

import maml_tf

PACKAGE_DIR = os.path.dirname(os.path.abspath(maml_tf.__file__))
LIBRARY = ("algorithms", "meta_batch", "evaluation", "inner_opt", "inner_rates", "per_step", "variants", "models", "layers", "kernels", "metrics", "types", "errors")
APPLICATION = ("experiment", "workdir", "transfer", "reports", "bench", "rl", "main", "flag_definitions", "flags_map",
               "datasets", "deploy", "classify", "export")
# Each runner package and what it may not import (the layers above it).
ABOVE = {"datasets": ("experiment", "workdir", "transfer", "rl", "deploy", "reports", "bench", "main"),
         "workdir": ("experiment", "transfer", "rl", "deploy", "reports", "bench", "main"),
         "experiment": ("transfer", "rl", "deploy", "reports", "bench", "main")}


def package_modules():
    """{dotted module name: file path} of every module of maml_tf (a package is its __init__)."""
    modules = {}
    for folder, _, files in os.walk(PACKAGE_DIR):
        for name in files:
            if name.endswith(".py"):
                parts = os.path.relpath(os.path.join(folder, name), PACKAGE_DIR)[:-3].split(os.sep)
                if parts[-1] == "__init__":
                    parts = parts[:-1]
                modules[".".join(["maml_tf", *parts])] = os.path.join(folder, name)
    return modules


def imported_modules(name, path, modules):
    """The maml_tf modules `name` imports anywhere in its file (inside functions too)."""
    is_package = path.endswith("__init__.py")
    found = set()
    for node in ast.walk(ast.parse(open(path).read(), path)):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import
                anchor = name.split(".")[: len(name.split(".")) - node.level + is_package]
                base = ".".join(anchor + ([base] if base else []))
            # `from pkg import x`: x is a module if there is one of that name, else a name in pkg
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                       for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in modules:  # `import a.b.c` of a name: its module
                target = target.rpartition(".")[0]
            if target.startswith("maml_tf") and target != name:
                found.add(target)
    return found


def import_graph():
    modules = package_modules()
    return {name: imported_modules(name, path, modules) for name, path in modules.items()}


def find_cycle(graph):
    """One import cycle as a list of modules (first == last), or None."""
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_the_graph_sees_imports_inside_functions():
    graph = import_graph()
    assert "maml_tf.datasets" in graph["maml_tf.experiment.config"]  # imported in Config.validate
    assert "maml_tf.experiment.train" in graph["maml_tf.main"]  # imported inside main()


def test_no_import_cycles():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_library_imports_nothing_of_the_application():
    graph = import_graph()
    forbidden = tuple(f"maml_tf.{part}" for part in APPLICATION)
    for module in LIBRARY:
        name = f"maml_tf.{module}"
        assert name in graph, f"{name} is missing"
        bad = [t for t in graph[name] if t == "maml_tf" or t.startswith(forbidden)]
        assert not bad, f"{name} imports {bad}"


def test_each_runner_package_imports_nothing_above_it():
    graph = import_graph()
    for package, above in ABOVE.items():
        forbidden = tuple(f"maml_tf.{part}" for part in above)
        for name in (m for m in graph if m == f"maml_tf.{package}" or m.startswith(f"maml_tf.{package}.")):
            bad = [t for t in graph[name] if t.startswith(forbidden)]
            assert not bad, f"{name} imports {bad}"


def test_import_maml_tf_leaves_tensorflow_unloaded_and_the_api_loads_lazily():
    code = ("import sys, maml_tf\n"
            "assert 'tensorflow' not in sys.modules, 'import maml_tf loaded tensorflow'\n"
            "from maml_tf import experiment, reports, bench\n"
            "from maml_tf.experiment import config, runtime\n"
            "assert 'tensorflow' not in sys.modules, 'the runner packages loaded tensorflow'\n"
            "from maml_tf import algorithms, models, metrics\n"
            "assert maml_tf.Learner is models.Learner and maml_tf.adapt is algorithms.adapt\n"
            "assert {'inner_opt', 'types', 'maml_meta_grads'} <= set(dir(maml_tf))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert proc.returncode == 0, proc.stderr[-2000:]
