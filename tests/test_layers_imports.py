"""The package's modules import one way, from the bottom layer up (docs/design.md, "Layers"):
every import (function-level ones included) goes to a lower layer or, inside one package of a
layer, to a sibling without a cycle; ``fwd/`` and ``bwd/`` never import each other; and no kernel
is a re-jitted copy of another."""
import ast
import importlib
import pkgutil
from pathlib import Path

import triton

import triton_ops

ROOT = Path(triton_ops.__file__).parent

# Bottom to top. A module's layer is the first pattern that matches its dotted name.
LAYERS = [
    ("runtime", ["runtime"]),
    ("launch replay", ["replay"]),
    ("eager warm path", ["eager"]),
    ("shape logic and configs", ["broadcast", "tune"]),
    ("device helpers", ["tiles"]),
    ("scalar math", ["scalar"]),
    ("templates", ["templates"]),
    ("kernel entry points", ["fwd", "bwd"]),
    ("launchers", ["launchers"]),
    ("spec and registry", ["spec"]),
    ("ops", ["ops"]),
    ("public API and tools", ["", "counting"]),
    ("nn and tools on the API", ["nn", "functional", "autotune", "selfcheck"]),
    ("model patching", ["patching"]),
    ("applications", ["demo"]),
    ("command line", ["__main__"]),
]


def _module_names():
    names = []
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names.append(".".join(parts))
    return names


MODULES = _module_names()


def _path(name):
    p = ROOT.joinpath(*name.split(".")) if name else ROOT
    return p / "__init__.py" if p.is_dir() else p.with_suffix(".py")


def _layer(name):
    head = name.split(".")[0]
    for rank, (_, heads) in enumerate(LAYERS):
        if head in heads:
            return rank
    raise AssertionError(f"module triton_ops.{name} is in no layer: add it to LAYERS")


def _imports(name):
    """The package modules ``name`` imports anywhere in its code (relative names)."""
    tree = ast.parse(_path(name).read_text())
    package = name.split(".")[:-1] if not _path(name).name == "__init__.py" else name.split(".") if name else []
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "triton_ops" or alias.name.startswith("triton_ops."):
                    found.add(alias.name[len("triton_ops."):] if "." in alias.name else "")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            elif node.module and (node.module == "triton_ops" or node.module.startswith("triton_ops.")):
                mod = node.module[len("triton_ops."):] if "." in node.module else ""
            else:
                continue
            for alias in node.names:
                sub = f"{mod}.{alias.name}" if mod else alias.name
                found.add(sub if sub in MODULES else mod)
    found.discard(name)
    return found


GRAPH = {name: _imports(name) for name in MODULES}


def test_every_module_has_a_layer():
    for name in MODULES:
        _layer(name)


def test_imports_go_down():
    bad = []
    for name, deps in GRAPH.items():
        for dep in deps:
            same_package = name.split(".")[:-1] == dep.split(".")[:-1] and "." in name
            if _layer(dep) > _layer(name) or (_layer(dep) == _layer(name) and not same_package):
                bad.append(f"triton_ops.{name} ({LAYERS[_layer(name)][0]}) imports triton_ops.{dep} "
                           f"({LAYERS[_layer(dep)][0]})")
    assert not bad, "\n".join(bad)


def test_no_cycles():
    state, stack = {}, []

    def visit(n):
        state[n] = 1
        stack.append(n)
        for d in GRAPH[n]:
            if state.get(d) == 1:
                raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(d):] + [d]))
            if d not in state:
                visit(d)
        stack.pop()
        state[n] = 2

    for n in MODULES:
        if n not in state:
            visit(n)


def test_fwd_and_bwd_are_independent():
    for name, deps in GRAPH.items():
        for side, other in (("fwd", "bwd"), ("bwd", "fwd")):
            if name.split(".")[0] == side:
                assert not any(d.split(".")[0] == other for d in deps), (name, deps)


def test_the_rule_catches_a_violation():
    # the checker itself: an upward import and a fwd -> bwd import are both seen
    assert _layer("runtime") < _layer("ops.unary") and _layer("fwd.pointwise") == _layer("bwd.pointwise")
    assert "launchers.pointwise" in GRAPH["ops.unary"] and "templates.pointwise" in GRAPH["fwd.pointwise"]


def _kernels():
    for info in pkgutil.walk_packages(triton_ops.__path__, "triton_ops."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for attr, value in vars(module).items():
            if isinstance(value, triton.runtime.KernelInterface):
                yield info.name, attr, value


def test_no_rejitted_copies():
    """Every jitted object wraps its own Python function, and no source jits another's ``.fn``."""
    owners = {}
    for module, attr, kernel in _kernels():
        fn = kernel.fn
        if fn.__module__ != module:
            continue  # an import of a kernel defined elsewhere
        owners.setdefault(id(fn), set()).add(f"{module}.{attr}")
    copies = [sorted(v) for v in owners.values() if len(v) > 1]
    assert not copies, copies
    for name in MODULES:
        for node in ast.walk(ast.parse(_path(name).read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "jit" and node.args:
                arg = node.args[0]
                assert not (isinstance(arg, ast.Attribute) and arg.attr == "fn"), f"re-jitted kernel in {name}"


def test_kernel_names_say_their_direction():
    for name, spec in triton_ops.registry.items():
        for k in spec.fwd_kernels:
            assert k.fn.__module__.startswith("triton_ops.fwd."), (name, k.fn.__name__)
        for k in spec.bwd_kernels:
            assert k.fn.__module__.startswith("triton_ops.bwd."), (name, k.fn.__name__)
            assert "_fwd_" not in k.fn.__name__, (name, k.fn.__name__)
        for k in spec.fwd_kernels:
            assert "_vjp_" not in k.fn.__name__ and "_bwd_" not in k.fn.__name__, (name, k.fn.__name__)
