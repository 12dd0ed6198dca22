"""The layout a newcomer can read: layers without cycles, a small root, simple functions, tests apart.

The import-linter contracts in pyproject.toml (run by .ci/run as `lint-imports`) say which layer
may import which; this module checks what they do not: no cycle among bridge's modules, at most
10 modules at bridge/'s root, radon's complexity budget, and tests that share code only through
tests/support/.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterator
from pathlib import Path

import grimp
from radon.complexity import cc_rank, cc_visit
from radon.visitors import Function

ROOT = Path(__file__).resolve().parents[1]
BRIDGE = ROOT / "bridge"
TESTS = ROOT / "tests"
MAX_ROOT_MODULES = 10
MAX_RATED_C = 25


def imported_modules(path: Path, package: str) -> Iterator[tuple[int, str]]:
    """(line, module) for every import in `path`, relative ones resolved against `package`.

    `from a import b` yields both `a` and `a.b`: `b` may be a module (`from tests import x`).
    """
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            yield node.lineno, module
            for alias in node.names:
                yield node.lineno, f"{module}.{alias.name}"


def package_of(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])


def test_tests_share_code_only_through_tests_support() -> None:
    """No test module imports another test module or conftest.py: shared fakes live in tests/support/.

    conftest.py and tests/support/ obey the same rule, so every shared name has one home.
    """
    offences = []
    for path in sorted(TESTS.rglob("*.py")):
        for line, module in imported_modules(path, package_of(path)):
            parts = module.split(".")
            if parts[0] == "tests" and len(parts) > 1 and parts[1] != "support":
                offences.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    assert not offences, "import shared code from tests/support/ instead:\n" + "\n".join(offences)


def test_bridges_root_holds_at_most_ten_modules() -> None:
    """Only the shared foundation sits at bridge/'s root; everything else lives in its layer's package."""
    modules = sorted(p.name for p in BRIDGE.glob("*.py"))
    assert len(modules) <= MAX_ROOT_MODULES, f"{len(modules)} modules at bridge/'s root: {modules}"


def functions(blocks: list[object]) -> Iterator[Function]:
    """Every function, method and nested function (closure) among radon's blocks; classes are skipped.

    radon lists a class's methods both inside the class and on their own, so only the latter count.
    A closure counts on its own as well (radon does not add its complexity to the enclosing function).
    """
    stack = [block for block in blocks if isinstance(block, Function)]
    while stack:
        function = stack.pop()
        yield function
        stack.extend(function.closures)


@functools.cache
def ratings() -> list[tuple[str, str, int]]:
    """(rank, "path:line name", complexity) of every function in bridge/, per radon's cc_visit (read once)."""
    found = []
    for path in sorted(BRIDGE.rglob("*.py")):
        for function in functions(cc_visit(path.read_text(encoding="utf-8"))):
            where = f"{path.relative_to(ROOT)}:{function.lineno} {function.fullname}"
            found.append((cc_rank(function.complexity), where, function.complexity))
    return found


def test_no_function_in_bridge_is_rated_d_or_worse() -> None:
    """Cyclomatic complexity (radon): D starts at 21. Counted over functions, methods and closures, not classes."""
    worst = [f"{where} ({score})" for rank, where, score in ratings() if rank >= "D"]
    assert not worst, "split these:\n" + "\n".join(worst)


def test_at_most_25_functions_in_bridge_are_rated_c() -> None:
    """radon's C is 11-20: the project's budget is 25 of them. Functions, methods and closures count; classes not."""
    rated_c = sorted(f"{where} ({score})" for rank, where, score in ratings() if rank == "C")
    assert len(rated_c) <= MAX_RATED_C, f"{len(rated_c)} functions rated C (at most {MAX_RATED_C}):\n" + \
        "\n".join(rated_c)


def cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """The import cycles among the graph's modules: its strongly connected components of two or more.

    Tarjan's algorithm, without recursion. An import inside `if TYPE_CHECKING:` counts too, as it
    does for import-linter: a cycle that only the type checker sees is still one to read around.
    """
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: list[str] = []
    found = []
    for start in sorted(graph.modules):
        if start in index:
            continue
        work = [(start, iter(sorted(graph.find_modules_directly_imported_by(start))))]
        index[start] = low[start] = len(index)
        on_stack.append(start)
        while work:
            module, imported = work[-1]
            for other in imported:
                if other not in index:
                    index[other] = low[other] = len(index)
                    on_stack.append(other)
                    work.append((other, iter(sorted(graph.find_modules_directly_imported_by(other)))))
                    break
                if other in on_stack:
                    low[module] = min(low[module], index[other])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[module])
                if low[module] == index[module]:
                    component = on_stack[on_stack.index(module):]
                    del on_stack[on_stack.index(module):]
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


def test_no_import_cycle_among_bridges_modules() -> None:
    """Module by module (grimp's graph, as import-linter builds it), including a package's __init__."""
    found = cycles(grimp.build_graph("bridge", cache_dir=None))
    assert not found, "import cycles:\n" + "\n".join(" <-> ".join(component) for component in found)


def test_the_cycle_finder_finds_cycles() -> None:
    """The checks above pass on a clean tree, so show the cycle finder on a graph with known cycles."""
    graph = grimp.ImportGraph()
    for importer, imported in [("p.a", "p.b"), ("p.b", "p.c"), ("p.c", "p.a"), ("p.c", "p.d"),
                               ("p.d", "p.e"), ("p.e", "p.d"), ("p.e", "p.f")]:
        graph.add_import(importer=importer, imported=imported)
    assert sorted(cycles(graph)) == [["p.a", "p.b", "p.c"], ["p.d", "p.e"]]


def test_the_import_reader_resolves_relative_and_from_imports(tmp_path: Path) -> None:
    """`from tests import x` and `from . import x` must be seen as imports of tests.x."""
    source = tmp_path / "example.py"
    source.write_text("import tests.test_a\nfrom tests import test_b\nfrom . import test_c\nfrom .support import d\n")
    found = {module for _, module in imported_modules(source, "tests")}
    assert {"tests.test_a", "tests.test_b", "tests.test_c", "tests.support.d"} <= found
