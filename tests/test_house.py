"""The house rules of CONTRIBUTING.md, kept by tests: imports go one way and never in circles,
modules and functions stay small enough to read."""

import ast
import collections
import re
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "seglab"

#: The layers of CONTRIBUTING.md, bottom first: a module imports from its own layer or below.
LAYERS = [
    {
        "_checks",
        "_constraints",
        "_signals",
        "_files",
        "_threads",
        "_jit",
        "_feature_groups",
        "image",
    },
    {"io", "features", "metrics", "viz", "losses", "nn", "_forest_kernels"},
    {"cluster", "models", "data", "inference", "instances", "interactive"},
    {"engine", "segment", "batch", "baselines"},
    {"compare", "report", "bsds", "demo"},
    {"app"},
    {"cli"},
    {"__main__", "__init__"},
]
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 80  # lines of a function, its docstring not counted
MAX_KERNEL_LINES = 120  # a compiled (numba) kernel, with a comment saying why it is long


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(SRC.rglob("*.py")):
        parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
        if parts[-1] == "__init__" and len(parts) > 1:
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _imports(name: str, path: Path) -> set[str]:
    """The seglab modules ``name`` imports, at module level or inside functions."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            out |= {module} | {f"{module}.{a.name}" for a in node.names}
    return {m for m in out if m == "seglab" or m.startswith("seglab.")}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph = collections.defaultdict(set)
    for name, path in modules.items():
        for target in _imports(name, path):
            while target not in modules and "." in target:
                target = target.rsplit(".", 1)[0]
            if target != name and not name.startswith(target + "."):  # its own package: fine
                graph[name].add(target)
    return graph


def _unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_imports_follow_the_layers():
    layer = {unit: i for i, units in enumerate(LAYERS) for unit in units}
    wrong = []
    for source, targets in _graph().items():
        for target in targets:
            a, b = _unit(source), _unit(target)
            assert a in layer and b in layer, f"{a} or {b} is in no layer: add it to LAYERS"
            if layer[b] > layer[a]:
                wrong.append(f"{source} imports {target} (layer {layer[b]} above {layer[a]})")
    assert not wrong, "\n".join(wrong)


def test_no_import_cycles():
    graph = _graph()
    index, low, stack, on, cycles = {}, {}, [], set(), []

    def visit(v):  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(_modules()):
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


@pytest.mark.parametrize("path", sorted(SRC.rglob("*.py")), ids=lambda p: str(p.relative_to(SRC)))
def test_modules_and_functions_are_small(path):
    lines = path.read_text().splitlines()
    assert len(lines) <= MAX_MODULE_LINES, f"{len(lines)} lines: split it along its ideas"
    for node in ast.walk(ast.parse("\n".join(lines))):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = node.end_lineno - node.lineno + 1
            doc = node.body[0] if node.body else None
            if isinstance(doc, ast.Expr) and isinstance(getattr(doc, "value", None), ast.Constant):
                length -= doc.end_lineno - doc.lineno + 1  # documentation is never too long
            decorators = " ".join(ast.unparse(d) for d in node.decorator_list)
            kernel = any(word in decorators for word in ("njit", "numba", "kernel("))
            limit = MAX_KERNEL_LINES if kernel else MAX_FUNCTION_LINES
            assert length <= limit, f"{node.name} has {length} lines (at most {limit})"
            if kernel and length > MAX_FUNCTION_LINES:
                body = "\n".join(lines[node.lineno - 1 : node.end_lineno])
                assert "# long:" in body, f"{node.name}: say why the kernel is long ('# long: ...')"


@pytest.mark.slow
def test_the_top_level_names_are_lazy_and_real():
    import subprocess
    import sys

    code = ("import sys, seglab; assert 'torch' not in sys.modules and 'numba' not in sys.modules; "
            "[getattr(seglab, n) for n in seglab.__all__]; print(len(seglab.__all__))")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert int(out.stdout) > 20
    import seglab

    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        seglab.nope  # noqa: B018
    assert seglab.KMeans is __import__("seglab.cluster", fromlist=["KMeans"]).KMeans


def test_lists_in_help_and_readme_come_from_the_code():
    from seglab._feature_groups import FEATURE_GROUPS
    from seglab.cli import build_parser

    segment_help = build_parser()._subparsers._group_actions[0].choices["segment"].format_help()
    readme = (SRC.parents[1] / "README.md").read_text()
    for group in FEATURE_GROUPS:
        assert group in segment_help and f"`{group}`" in readme, group


def test_every_public_definition_says_what_it_is():
    missing = []
    for path in sorted(SRC.rglob("*.py")):
        parts = path.relative_to(SRC).parts
        if any(p.startswith("_") and p != "__init__.py" for p in parts):
            continue  # private modules: their own docstring says what they are for

        def visit(node, prefix, path=path):
            for sub in node.body:
                if isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    if sub.name.startswith("_"):
                        continue
                    if ast.get_docstring(sub) is None:
                        missing.append(f"{path.relative_to(SRC)}:{prefix}{sub.name}")
                    if isinstance(sub, ast.ClassDef):
                        visit(sub, f"{sub.name}.")

        visit(ast.parse(path.read_text()), "")
    assert not missing, "no docstring: " + ", ".join(missing)


def test_library_errors_name_parameters_not_flags():
    """Errors raised outside the command line name the library's parameters (in backquotes:
    `out`, `overwrite=True`); the command line turns them into its flags."""
    flag = re.compile(r"(?<![\w-])--[a-z]")
    offenders = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC)
        if rel.parts[0] == "cli":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Raise) and node.exc is not None:
                texts = [c.value for c in ast.walk(node.exc)
                         if isinstance(c, ast.Constant) and isinstance(c.value, str)]  # fmt: skip
                if any(flag.search(t) for t in texts):
                    offenders.append(f"{rel}:{node.lineno}")
    assert not offenders, f"errors naming command-line flags: {offenders}"
