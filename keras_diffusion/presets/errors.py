"""The error raised when a model cannot be loaded, and the type check."""


class ModelFileError(ValueError):
    """A model could not be loaded; the message says why."""


def check_type(model, expected_type, where):
    """Raises `ModelFileError` unless `model` is an `expected_type`."""
    if expected_type is None or isinstance(model, expected_type):
        return
    names = getattr(expected_type, "__name__", None) or "/".join(
        t.__name__ for t in expected_type
    )
    raise ModelFileError(
        f"{where!r} holds a {type(model).__name__}, but this needs a {names}."
    )


def first_line(error):
    text = str(error).strip()
    return text.splitlines()[0][:300] if text else ""
