from keras_diffusion.utils.io import atomic_path


def save_figure(figure, path, dpi=120):
    """Writes a matplotlib figure to a PNG at `path`, then closes it.

    The layout is tightened first. The file appears whole or not at all
    (written to a temporary file, then renamed), so an interrupted run
    leaves no half-written plot.

    Args:
        figure: a `matplotlib.figure.Figure`.
        path: str, the `.png` file to write.
        dpi: int, resolution.

    Example:
    >>> figure, axis = plt.subplots()
    >>> axis.plot([1, 2, 3])
    >>> save_figure(figure, "curve.png")
    """
    import matplotlib.pyplot as plt

    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png", dpi=dpi)
    plt.close(figure)
