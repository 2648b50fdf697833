"""Writes docs/api.md, the API reference, from the docstrings.

    python docs/make_api.py           # rewrite docs/api.md
    python docs/make_api.py --check   # exit 1 if docs/api.md is out of date

It lists every name in `keras_diffusion.__all__` with its signature and the
first paragraph of its docstring; for each module in that list, the names in
the module's own `__all__`. `tests/test_api_docs.py` checks that the
committed page is what this script writes.
"""

import argparse
import inspect
import os
import sys
import types

HERE = os.path.dirname(os.path.abspath(__file__))
API_PAGE = os.path.join(HERE, "api.md")

HEADER = """\
# API reference

Generated from the docstrings by `python docs/make_api.py`; do not edit by
hand (`tests/test_api_docs.py` fails when this page is out of date). Each
entry gives the signature and the first paragraph of the docstring; see
`help(keras_diffusion.NAME)` for the rest (arguments, examples). The
guides are [ddpm.md](ddpm.md), [latent.md](latent.md),
[guidance.md](guidance.md), [rectified_flow.md](rectified_flow.md) and
[evaluation.md](evaluation.md).
"""


def first_paragraph(obj):
    """The first paragraph of `obj`'s own docstring (not an inherited one)."""
    doc = obj.__doc__ if isinstance(obj, (type, types.FunctionType,
                                          types.ModuleType)) else None
    if not doc:
        return "(No docstring.)"
    return inspect.cleandoc(doc).split("\n\n")[0].strip()


def signature(name, obj):
    """`name(arg, ...)` for a class or function; `None` for anything else."""
    if not callable(obj):
        return None
    try:
        return f"{name}{inspect.signature(obj)}"
    except (TypeError, ValueError):
        return f"{name}(...)"


def entry(qualified_name, short_name, obj):
    """The Markdown of one public name."""
    lines = [f"### `{qualified_name}`", ""]
    if isinstance(obj, (type, types.FunctionType)):
        kind = "class" if isinstance(obj, type) else "function"
        lines += ["```python", f"{signature(short_name, obj)}", "```", "",
                  f"*{kind}*. {first_paragraph(obj)}", ""]
    else:
        lines += [f"*constant* (`{type(obj).__name__}`).", ""]
    return lines


def render():
    """The text of docs/api.md."""
    import keras_diffusion

    lines = [HEADER]
    names = list(keras_diffusion.__all__)
    objects = [n for n in names
               if not isinstance(getattr(keras_diffusion, n), types.ModuleType)]
    modules = [n for n in names if n not in objects]
    documented = {}
    lines += ["## `keras_diffusion`", "", first_paragraph(keras_diffusion), "",
              "```python", "import keras_diffusion as kd", "```", ""]
    for name in sorted(objects, key=str.lower):
        obj = getattr(keras_diffusion, name)
        documented[id(obj)] = f"keras_diffusion.{name}"
        lines += entry(f"keras_diffusion.{name}", name, obj)
    for module_name in sorted(modules):
        module = getattr(keras_diffusion, module_name)
        lines += [f"## `keras_diffusion.{module_name}`", "",
                  first_paragraph(module), ""]
        members = getattr(module, "__all__", None)
        if members is None:
            raise ValueError(f"keras_diffusion.{module_name} has no __all__.")
        for name in sorted(members, key=str.lower):
            obj = getattr(module, name)
            qualified = f"keras_diffusion.{module_name}.{name}"
            if id(obj) in documented and not isinstance(obj, (dict, tuple)):
                lines += [f"### `{qualified}`", "",
                          f"The same as `{documented[id(obj)]}`.", ""]
                continue
            documented[id(obj)] = qualified
            lines += entry(qualified, name, obj)
    return "\n".join(lines).rstrip() + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description="Write docs/api.md.")
    parser.add_argument("--check", action="store_true",
                        help="Only check that docs/api.md is current.")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        with open(API_PAGE, encoding="utf-8") as f:
            if f.read() != text:
                print("docs/api.md is out of date; run python docs/make_api.py")
                return 1
        return 0
    with open(API_PAGE, "w", encoding="utf-8") as f:
        f.write(text)
    print(f"Wrote {API_PAGE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
