"""The package layout stays as docs/architecture.md describes it: folders by role, small modules.

Pure static analysis: every module of app/ is parsed with `ast`, nothing is imported.

Which imports count:

- The folder rules and the two "nobody imports it" rules count every import, at module
  level, inside functions and under `if TYPE_CHECKING:`: a layer that names another
  one, even lazily or for types only, depends on it.
- The cycle rule counts module-level imports only, leaving out those under
  `if TYPE_CHECKING:`. Those are what Python runs while it loads a module, so only they
  can meet a half-initialised module. An import inside a function runs when the function
  is called, after every module has loaded; it is how the command line defers loading a
  subcommand's dependencies, and it is not an import-time cycle.

An import resolves to the most specific module of app/ it names: `from app.x import y`
is `app.x.y` when that is a module or package, otherwise `app.x` (a package means its
`__init__.py`). Parent packages imported on the way are not counted.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
APP = REPO_ROOT / "app"
ARCHITECTURE = REPO_ROOT / "docs" / "architecture.md"

# app/ itself holds the entry point, the composition and a few shared leaves, not the code.
MAX_TOP_LEVEL_MODULES = 6
MAX_LINES = 450
# Modules allowed over MAX_LINES, each with its own ceiling and the reason: none today.
LINE_ALLOW_LIST: dict[str, int] = {}


@dataclass(frozen=True)
class Import:
    """One import statement's target as seen from the module that holds it."""

    target: str
    line: int
    module_level: bool
    type_checking: bool


@dataclass(frozen=True)
class FolderRule:
    """What the modules under one folder of app/ may (`only`) or may not (`never`) import."""

    folder: str
    only: tuple[str, ...] = ()
    never: tuple[str, ...] = ()

    def breaks(self, target: str) -> bool:
        """Whether importing the dotted module `target` from this folder is against the rule."""
        if not target.startswith("app."):
            return False
        if self.only and not any(_within(target, allowed) for allowed in self.only):
            return True
        return any(_within(target, forbidden) for forbidden in self.never)


# The import rules of docs/architecture.md's layer table, one row per folder.
FOLDER_RULES = (
    # The framework-free core: nothing above it, only the clock and logging/metrics.
    FolderRule("app/transcription/", only=("app.transcription", "app.clock", "app.observability")),
    # Logging and metrics; the log handlers read their settings (app.config).
    FolderRule("app/observability/", only=("app.observability", "app.config")),
    FolderRule(
        "app/backends/",
        never=("app.service", "app.api", "app.cli", "app.asgi", "app.composition"),
    ),
    # The service sees backends through their Protocols (app.backends.base) only.
    FolderRule(
        "app/service/",
        never=(
            "app.api",
            "app.cli",
            "app.asgi",
            "app.composition",
            "app.backends.local",
            "app.backends.redis",
        ),
    ),
    FolderRule("app/api/", never=("app.backends", "app.cli", "app.composition", "app.asgi")),
)

# Who may import the command line and the benchmarks (paths relative to the repository).
CLI_IMPORTERS = ("app/__main__.py", "app/cli/")
BENCH_IMPORTERS = ("app/bench/", "app/cli/bench.py")


def _within(target: str, prefix: str) -> bool:
    return target == prefix or target.startswith(prefix + ".")


def _under(path: str, places: tuple[str, ...]) -> bool:
    return any(
        path == place or (place.endswith("/") and path.startswith(place)) for place in places
    )


@cache
def _modules() -> dict[str, Path]:
    """Every module of app/ by dotted name (a package by its own name, for its __init__.py)."""
    found: dict[str, Path] = {}
    for path in sorted(APP.rglob("*.py")):
        parts = path.relative_to(REPO_ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _relative(path: Path) -> str:
    return path.relative_to(REPO_ROOT).as_posix()


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _resolve(name: str) -> str:
    """The longest prefix of dotted `name` that is a module of app/ (or `name` itself)."""
    modules = _modules()
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in modules:
            return candidate
    return name


def _targets(node: ast.Import | ast.ImportFrom, module: str, is_package: bool) -> Iterator[str]:
    if isinstance(node, ast.Import):
        for alias in node.names:
            yield _resolve(alias.name)
        return
    base = node.module or ""
    if node.level:
        package = module.split(".") if is_package else module.split(".")[:-1]
        anchor = package[: len(package) - node.level + 1]
        base = ".".join([*anchor, base] if base else anchor)
    for alias in node.names:
        yield _resolve(f"{base}.{alias.name}" if alias.name != "*" else base)


@cache
def _imports(module: str) -> tuple[Import, ...]:
    """Every import of one module of app/, with where it stands."""
    path = _modules()[module]
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    found: list[Import] = []

    def visit(node: ast.AST, module_level: bool, type_checking: bool) -> None:
        if isinstance(node, ast.Import | ast.ImportFrom):
            for target in _targets(node, module, is_package):
                found.append(Import(target, node.lineno, module_level, type_checking))
            return
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            module_level = False
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.body:
                visit(child, module_level, True)
            for child in node.orelse:
                visit(child, module_level, type_checking)
            return
        for child in ast.iter_child_nodes(node):
            visit(child, module_level, type_checking)

    visit(tree, True, False)
    return tuple(found)


def _app_imports() -> Iterator[tuple[str, Import]]:
    """(importing module's path, import) for every import of an app module."""
    for module, path in _modules().items():
        for found in _imports(module):
            if _within(found.target, "app"):
                yield _relative(path), found


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(edges.get(node, ())):
            if successor not in index:
                connect(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component: list[str] = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            connect(node)
    return components


def test_app_holds_few_top_level_modules() -> None:
    """app/ itself holds at most six modules besides __init__.py and __main__.py."""
    top = sorted(p.name for p in APP.glob("*.py") if p.name not in {"__init__.py", "__main__.py"})
    assert len(top) <= MAX_TOP_LEVEL_MODULES, top


def test_no_module_is_over_the_line_limit() -> None:
    """Every module of app/ has at most 450 lines, or the ceiling its allow-list entry gives."""
    too_long = {}
    for path in _modules().values():
        name = _relative(path)
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > LINE_ALLOW_LIST.get(name, MAX_LINES):
            too_long[name] = lines
    assert not too_long, too_long


def test_line_allow_list_names_only_long_modules() -> None:
    """Each allow-list entry is a module that exists and is still over the general limit."""
    for name, ceiling in LINE_ALLOW_LIST.items():
        path = REPO_ROOT / name
        assert path.is_file(), name
        assert ceiling > MAX_LINES, name
        assert len(path.read_text(encoding="utf-8").splitlines()) > MAX_LINES, name


def test_no_import_cycle_between_app_modules() -> None:
    """Module-level imports (not under TYPE_CHECKING) between app modules form no cycle."""
    edges: dict[str, set[str]] = {module: set() for module in _modules()}
    for module in _modules():
        for found in _imports(module):
            runs_on_load = found.module_level and not found.type_checking
            if runs_on_load and found.target in edges and found.target != module:
                edges[module].add(found.target)
    assert not _cycles(edges)


@pytest.mark.parametrize("rule", FOLDER_RULES, ids=lambda rule: rule.folder)
def test_folder_imports_follow_the_layer_rules(rule: FolderRule) -> None:
    """No module under a folder imports what that folder's row of the layer table forbids."""
    broken = sorted(
        f"{path}:{found.line} imports {found.target}"
        for path, found in _app_imports()
        if path.startswith(rule.folder) and rule.breaks(found.target)
    )
    assert not broken, broken


def test_only_the_entry_point_imports_the_command_line() -> None:
    """app.cli is imported by app/__main__.py and app/cli/ only."""
    broken = sorted(
        f"{path}:{found.line} imports {found.target}"
        for path, found in _app_imports()
        if _within(found.target, "app.cli") and not _under(path, CLI_IMPORTERS)
    )
    assert not broken, broken


def test_only_the_bench_command_imports_the_benchmarks() -> None:
    """app.bench is imported by app/bench/ and app/cli/bench.py only, not even lazily."""
    broken = sorted(
        f"{path}:{found.line} imports {found.target}"
        for path, found in _app_imports()
        if _within(found.target, "app.bench") and not _under(path, BENCH_IMPORTERS)
    )
    assert not broken, broken


def _module_map() -> str:
    """The module map section of docs/architecture.md."""
    text = ARCHITECTURE.read_text(encoding="utf-8")
    match = re.search(r"^## Module map\n(.*?)(?=^## )", text, re.MULTILINE | re.DOTALL)
    assert match, "docs/architecture.md has no '## Module map' section"
    return match.group(1)


def _expand(item: str) -> list[str]:
    """`app/a/{b,c}.py` → `app/a/b.py`, `app/a/c.py`; anything else as it is."""
    match = re.fullmatch(r"(.*)\{([^}]*)\}(.*)", item)
    if not match:
        return [item]
    head, options, tail = match.groups()
    return [head + option.strip() + tail for option in options.split(",")]


def _mapped_paths() -> set[str]:
    """Every path the first column of the module map's table names."""
    named: set[str] = set()
    for line in _module_map().splitlines():
        if not line.startswith("| `"):
            continue
        first_cell = line.split("|")[1]
        for item in re.findall(r"`([^`]+)`", first_cell):
            named.update(_expand(item))
    return named


def _tree() -> tuple[set[str], set[str]]:
    """(modules, packages) of app/ as repository paths; packages end in a slash."""
    modules, packages = set(), set()
    for path in _modules().values():
        if path.name == "__init__.py":
            if path.parent != APP:
                packages.add(_relative(path.parent) + "/")
        else:
            modules.add(_relative(path))
    return modules, packages


def test_module_map_names_only_what_exists() -> None:
    """Every path in docs/architecture.md's module map is a module or package of app/."""
    modules, packages = _tree()
    assert _mapped_paths(), "the module map's table names no path"
    assert not _mapped_paths() - modules - packages, sorted(_mapped_paths() - modules - packages)


def test_module_map_names_every_module_and_package() -> None:
    """Every module of app/ is named (or its folder is); every package is named or holds one."""
    named = _mapped_paths()
    modules, packages = _tree()
    missing = sorted(
        m for m in modules if m not in named and m.rsplit("/", 1)[0] + "/" not in named
    )
    missing += sorted(
        p
        for p in packages
        if p not in named and not any(m.rsplit("/", 1)[0] + "/" == p for m in named)
    )
    assert not missing, missing
