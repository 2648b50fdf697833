"""The package's imports point one way, down docs/design.md's layer table."""

import ast
import os
import re

from conftest import ROOT

PACKAGE = os.path.join(ROOT, "keras_diffusion")


def _levels():
    """`{unit: level}` from the table in docs/design.md: a unit is a
    top-level module or sub-package of `keras_diffusion` (`"models"`,
    `"version"`), or `"__init__"` for the package root."""
    with open(os.path.join(ROOT, "docs", "design.md"), encoding="utf-8") as f:
        text = f.read()
    levels = {}
    for match in re.finditer(r"^\| (\d+) \| ([^|]+) \|", text, re.MULTILINE):
        for name in re.findall(r"`([^`]+)`", match.group(2)):
            levels[name.rstrip("/").removesuffix(".py")] = int(match.group(1))
    return levels


def _unit(module):
    parts = module.split(".")
    return "__init__" if len(parts) == 1 else parts[1]


def _imports():
    """`(importing file, its unit, imported unit)` for every import of
    `keras_diffusion`, those inside functions too."""
    for folder, _, files in os.walk(PACKAGE):
        for name in files:
            if not name.endswith(".py"):
                continue
            path = os.path.join(folder, name)
            relative = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
            source = _unit(relative.removesuffix(".__init__"))
            if relative == "keras_diffusion.__init__":
                source = "__init__"
            with open(path, encoding="utf-8") as f:
                tree = ast.parse(f.read())
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom) and node.module:
                    if node.module == "keras_diffusion":
                        targets = [f"keras_diffusion.{alias.name}"
                                   for alias in node.names]
                    else:
                        targets = [node.module]
                elif isinstance(node, ast.Import):
                    targets = [alias.name for alias in node.names]
                else:
                    continue
                for target in targets:
                    if target.split(".")[0] == "keras_diffusion":
                        yield os.path.relpath(path, ROOT), source, _unit(target)


def test_every_unit_of_the_package_has_a_level():
    levels = _levels()
    units = {name.removesuffix(".py") for name in os.listdir(PACKAGE)
             if (name.endswith(".py") or os.path.isfile(
                 os.path.join(PACKAGE, name, "__init__.py")))}
    missing = sorted(units - set(levels))
    assert not missing, f"docs/design.md's layer table lacks {missing}"


def test_imports_point_down_the_layer_table():
    levels = _levels()
    upward = sorted(
        f"{path} ({source}, level {levels[source]}) imports {target} "
        f"(level {levels[target]})"
        for path, source, target in _imports()
        if source != target and levels[target] >= levels[source]
    )
    assert not upward, "\n".join(upward)
