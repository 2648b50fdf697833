"""docs/api.md is what `python docs/make_api.py` writes, and the public API
(`keras_diffusion.__all__`) is complete and documented."""

import ast
import importlib.util
import os

import keras_diffusion
from conftest import ROOT


def _make_api():
    spec = importlib.util.spec_from_file_location(
        "make_api", os.path.join(ROOT, "docs", "make_api.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_api_page_is_current():
    make_api = _make_api()
    with open(make_api.API_PAGE, encoding="utf-8") as f:
        committed = f.read()
    assert make_api.render() == committed, (
        "docs/api.md is out of date: run `python docs/make_api.py`.")


def test_all_lists_every_name_imported_by_the_package():
    with open(keras_diffusion.__file__, encoding="utf-8") as f:
        tree = ast.parse(f.read())
    imported = {alias.asname or alias.name
                for node in tree.body if isinstance(node, ast.ImportFrom)
                for alias in node.names}
    imported = {name for name in imported if not name.startswith("_")}
    assert imported == set(keras_diffusion.__all__)


def test_every_public_name_has_a_docstring():
    assert "(No docstring.)" not in _make_api().render()


def test_readme_links_every_docs_page():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    pages = sorted(name for name in os.listdir(os.path.join(ROOT, "docs"))
                   if name.endswith(".md"))
    missing = [name for name in pages if f"](docs/{name})" not in readme]
    assert not missing, f"README.md does not link {missing}"
