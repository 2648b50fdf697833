import numpy as np


def frechet_distance(features_a, features_b):
    """Fréchet distance between Gaussians fitted to two sets of features.

    Each set is summarized by its mean `mu` and covariance `S`, and

        d = |mu_a - mu_b|^2 + Tr(S_a) + Tr(S_b) - 2 Tr(sqrt(S_a S_b)).

    With the features of an image classifier this is the FID (Heusel et al.,
    2017). The trace of the matrix square root needs no SciPy: for symmetric
    positive semi-definite covariances, `sqrt(S_a S_b)` has the eigenvalues of
    `sqrt(S_a) S_b sqrt(S_a)` (a symmetric matrix), so its trace is the sum of
    their square roots, with `sqrt(S_a)` from `numpy.linalg.eigh`. Eigenvalues
    that round-off makes slightly negative count as zero. Everything is
    computed in float64.

    Args:
        features_a: array `(num_a, dim)`, one feature vector per sample.
        features_b: array `(num_b, dim)`.

    Returns:
        A non-negative Python float.

    Example:
    >>> rng = np.random.default_rng(0)
    >>> a = rng.normal(0, 1, (1000, 4))
    >>> frechet_distance(a, a + 1.0)  # the means differ by 1 in 4 dims
    4.0...
    """
    features_a = _check_features(features_a, "features_a")
    features_b = _check_features(features_b, "features_b")
    if features_a.shape[1] != features_b.shape[1]:
        raise ValueError(
            "Both sets of features must have the same dimension. Got "
            f"{features_a.shape[1]} and {features_b.shape[1]}."
        )
    return frechet_distance_from_statistics(_moments(features_a),
                                            _moments(features_b))


def feature_statistics(features):
    """The mean and covariance of a set of features, in float64.

    They are all the Fréchet distance needs of a set, so a fixed reference
    (such as real images scored once) can be summarized once and compared
    with many sets by `frechet_distance_from_statistics`.

    Args:
        features: array `(num, dim)`, one feature vector per sample
            (`num >= 2`).

    Returns:
        `(mean, covariance)`: float64 arrays `(dim,)` and `(dim, dim)`.

    Example:
    >>> reference = feature_statistics(evaluator.features(real_images))
    >>> frechet_distance_from_statistics(
    ...     feature_statistics(evaluator.features(samples)), reference)
    """
    return _moments(_check_features(features, "features"))


def frechet_distance_from_statistics(statistics_a, statistics_b):
    """The Fréchet distance of `frechet_distance`, from each set's
    `(mean, covariance)` (as `feature_statistics` returns them).

    `frechet_distance(a, b)` is exactly
    `frechet_distance_from_statistics(feature_statistics(a),
    feature_statistics(b))`.

    Args:
        statistics_a: `(mean (dim,), covariance (dim, dim))`.
        statistics_b: the same, for the other set.

    Returns:
        A non-negative Python float.
    """
    mean_a, cov_a = _check_statistics(statistics_a, "statistics_a")
    mean_b, cov_b = _check_statistics(statistics_b, "statistics_b")
    if len(mean_a) != len(mean_b):
        raise ValueError(
            "Both sets of statistics must have the same dimension. Got "
            f"{len(mean_a)} and {len(mean_b)}."
        )

    eigenvalues, eigenvectors = np.linalg.eigh(cov_a)
    sqrt_a = (eigenvectors * np.sqrt(np.clip(eigenvalues, 0.0, None))) @ eigenvectors.T
    product = sqrt_a @ cov_b @ sqrt_a
    product = (product + product.T) / 2.0  # symmetric up to round-off
    trace_sqrt = np.sum(np.sqrt(np.clip(np.linalg.eigvalsh(product), 0.0, None)))

    distance = (
        np.sum(np.square(mean_a - mean_b))
        + np.trace(cov_a)
        + np.trace(cov_b)
        - 2.0 * trace_sqrt
    )
    return float(max(distance, 0.0))


def _check_features(features, name):
    features = np.asarray(features, dtype="float64")
    if features.ndim != 2:
        raise ValueError(
            f"`{name}` must be 2-D, (num_samples, dim). Got shape {features.shape}"
        )
    if len(features) < 2:
        raise ValueError(
            f"`{name}` needs at least 2 samples to fit a covariance. "
            f"Got {len(features)}"
        )
    if not np.all(np.isfinite(features)):
        raise ValueError(f"`{name}` holds NaN or infinite values.")
    return features


def _moments(features):
    return features.mean(axis=0), np.cov(features, rowvar=False).reshape(
        features.shape[1], features.shape[1]
    )


def _check_statistics(statistics, name):
    try:
        mean, cov = statistics
    except (TypeError, ValueError):
        raise ValueError(
            f"`{name}` must be a pair `(mean, covariance)`, as "
            "`feature_statistics` returns it."
        ) from None
    mean = np.asarray(mean, dtype="float64")
    cov = np.asarray(cov, dtype="float64")
    if mean.ndim != 1 or cov.shape != (len(mean), len(mean)):
        raise ValueError(
            f"`{name}` must be a mean `(dim,)` and a covariance `(dim, dim)`. "
            f"Got shapes {mean.shape} and {cov.shape}"
        )
    if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(cov))):
        raise ValueError(f"`{name}` holds NaN or infinite values.")
    return mean, cov
