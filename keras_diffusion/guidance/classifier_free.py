"""Classifier-free guidance (Ho & Salimans, 2022)."""

from keras import ops


def classifier_free_guidance(network_fn, samples, labels, null_class, guidance):
    """`uncond + guidance * (cond - uncond)`, from one forward pass.

    The conditional and the unconditional prediction come from one call of
    the network on a doubled batch: the samples with their `labels`, then
    the samples with the null class. `guidance = 0` is the unconditional
    prediction, `1` the plain conditional one.

    | code         | paper                        |
    | ------------ | ---------------------------- |
    | `cond`       | epsilon_theta(z_t, c)        |
    | `uncond`     | epsilon_theta(z_t) (null c)  |
    | `guidance`   | 1 + w (the paper's w is 0 at plain conditional) |

    Args:
        network_fn: callable `(samples, labels) -> prediction`.
        samples: the batch the network reads.
        labels: int class per sample.
        null_class: int, the label of "no class" (a network trained with
            condition dropout learns the unconditional prediction there).
        guidance: float (or scalar tensor), the guidance weight.

    Example:
    >>> def network_fn(x, y):
    ...     return unet({"noisy_images": x, "times": t, "labels": y})
    >>> classifier_free_guidance(network_fn, x, labels, 10, 4.0)
    """
    labels = ops.cast(labels, "int32")
    null_labels = ops.full(ops.shape(labels), null_class, "int32")
    both = network_fn(ops.concatenate([samples, samples], axis=0),
                      ops.concatenate([labels, null_labels], axis=0))
    cond, uncond = ops.split(both, 2, axis=0)
    return uncond + guidance * (cond - uncond)
