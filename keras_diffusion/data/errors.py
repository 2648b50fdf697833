"""The one error the data loaders raise for data they cannot use."""


class DataError(ValueError):
    """The data could not be loaded; the message says why and what to do."""
