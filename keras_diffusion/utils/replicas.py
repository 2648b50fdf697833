"""Random draws and losses for the global batch under data-parallel training."""

import keras
from keras import ops


def draw_for_global_batch(draw, shape, **kwargs):
    """Draws random values for the global batch; returns this replica's rows.

    Under a TensorFlow `tf.distribute` strategy with several replicas in
    sync (`MirroredStrategy`), Keras runs the train step once per replica on
    that replica's slice of the global batch. A `SeedGenerator` attached to
    the model is then a mirrored variable and gives every replica the same
    seed: a plain `keras.random.normal(shape, seed=generator)` would give
    every replica the same noise. Instead this draws values for the whole
    global batch, `(num_replicas * shape[0],) + shape[1:]` (the same on
    every replica), and returns the rows of this replica's slice (replica
    `i` holds rows `i * shape[0]` to `(i + 1) * shape[0]`, as
    `MirroredStrategy` splits a batch). Replicas therefore never share
    noise, and training sees the same noise as on one device with the same
    global batch and seed.

    Everywhere else (one device; JAX's `keras.distribution`, where the train
    step is traced once over the global, sharded batch; PyTorch) it returns
    `draw(shape, **kwargs)`.

    Args:
        draw: a `keras.random` function taking `shape` first, such as
            `keras.random.normal`, `keras.random.uniform` or
            `keras.random.randint`.
        shape: tuple, the shape of this replica's values, batch first.
        **kwargs: the other arguments of `draw`, such as `seed`.

    Returns:
        A tensor of shape `shape`.

    Example:
    >>> noise = draw_for_global_batch(keras.random.normal, ops.shape(images),
    ...                               seed=self.seed_generator)
    """
    replica_id, num_replicas = _replica()
    if num_replicas == 1:
        return draw(shape, **kwargs)
    shape = tuple(shape)
    values = draw((num_replicas * shape[0],) + shape[1:], **kwargs)
    values = ops.reshape(values, (num_replicas, -1) + shape[1:])
    return ops.take(values, replica_id, axis=0)


def scale_loss_for_replicas(loss):
    """Divides a per-replica mean loss by the replicas in sync (TensorFlow).

    Under a `tf.distribute` strategy, Keras sums the replicas' gradients, and
    its own losses divide each replica's mean loss by the number of replicas
    so that the sum is the gradient of the global batch's mean loss (and it
    multiplies the logged loss back). A model whose `compute_loss` returns a
    loss of its own must do the same. Elsewhere (one device, JAX, PyTorch)
    it returns `loss` unchanged.

    Args:
        loss: scalar tensor, the mean loss over this replica's batch.

    Returns:
        The loss to return from `compute_loss`.

    Example:
    >>> return scale_loss_for_replicas(ops.mean(ops.square(pred - noise)))
    """
    _, num_replicas = _replica()
    if num_replicas == 1:
        return loss
    return loss * ops.cast(1.0 / num_replicas, loss.dtype)


def _replica():
    """`(replica id, replicas in sync)` in a TF replica context, else `(0, 1)`."""
    if keras.backend.backend() != "tensorflow":
        return 0, 1
    import tensorflow as tf

    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return 0, 1
    return context.replica_id_in_sync_group, context.num_replicas_in_sync
