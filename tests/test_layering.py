"""The architecture as a test: each part imports only the parts below it (docs/architecture.md).

symbolic ← evaluation ← baselines ← search ← comparison, all over a few stdlib-only
foundation modules; cli.py, __init__.py and demo.py sit on top. dro imports nothing from
lossevo, and no module imports another module's private names. Imports inside functions count:
a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FOUNDATIONS = {"atomic", "errors", "validation", "toml_sections", "__version__"}
ALLOWED = {
    "foundations": set(),
    "symbolic": set(),
    "evaluation": {"symbolic"},
    "baselines": {"evaluation", "symbolic"},
    "search": {"baselines", "evaluation", "symbolic"},
    "comparison": {"search", "baselines", "evaluation", "symbolic"},
}


def _part(module: str) -> str:
    """The part of a dotted lossevo module name ('lossevo.search.store' → 'search')."""
    parts = module.split(".")
    if len(parts) == 1 or parts[1] in FOUNDATIONS:
        return "foundations"
    return parts[1] if parts[1] in ALLOWED else "top"


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """(module, imported names) of every import in a file, at any depth."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            found += [(a.name, []) for a in node.names]
    return found


def _modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("path", _modules("lossevo"), ids=lambda p: str(p.relative_to(ROOT)))
def test_a_part_imports_only_the_parts_below_it(path):
    me = _part(".".join(path.relative_to(ROOT).with_suffix("").parts))
    if me == "top":
        return  # cli.py, __init__.py, demo.py: the public surface may use every part
    for module, names in _imports(path):
        if not module.startswith("lossevo"):
            continue
        # `from lossevo import x`: x is a module or the version
        targets = ([_part(f"lossevo.{n}") for n in names] if module == "lossevo"
                   else [_part(module)])
        for other in targets:
            assert other in (me, "foundations") or other in ALLOWED[me], (
                f"{path.relative_to(ROOT)} ({me}) imports {module} ({other}); "
                f"{me} may import {sorted(ALLOWED[me] | {'foundations'})}")


@pytest.mark.parametrize("path", _modules("dro"), ids=lambda p: str(p.relative_to(ROOT)))
def test_dro_stands_alone(path):
    bad = [m for m, _ in _imports(path) if m.split(".")[0] == "lossevo"]
    assert not bad, f"{path.relative_to(ROOT)} imports {bad}: dro must not depend on lossevo"


@pytest.mark.parametrize("path", _modules("lossevo"), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_private_names_cross_modules(path):
    for module, names in _imports(path):
        if module.startswith("lossevo"):
            private = [n for n in names if n.startswith("_") and not n.startswith("__")]
            assert not private, f"{path.relative_to(ROOT)} imports {private} from {module}"
