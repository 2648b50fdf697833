"""Forward FLOPs of a network: from its layer shapes, and by PyTorch's counter.

`benchmarks/performance.py --worker flops` counts our UNet both ways, and
`--worker diffusers` counts diffusers' `UNet2DModel` with PyTorch's
`FlopCounterMode`, the cross-check.
"""


def torch_flop_count(forward):
    """FLOPs that PyTorch's `FlopCounterMode` counts in `forward()`.

    Args:
        forward: callable taking no arguments, one forward pass of a
            PyTorch (or Keras-on-PyTorch) network.

    Returns:
        int, total FLOPs (2 per multiply-add).
    """
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        forward()
    return counter.get_total_flops()


def analytic_flops(network, inputs):
    """FLOPs (2 per multiply-add) of one forward pass, from layer shapes.

    Counts convolutions, transposed convolutions, dense layers and
    multi-head attention (projections, scores, weighted sums); normalization,
    activations and additions (a few percent) are left out. Each counted
    layer's `call` is wrapped for one eager forward pass, run with the
    transposed-convolution fast path off: `Upsample` then calls its
    `Conv2DTranspose` layer, which is counted, instead of computing the
    same products itself (`keras_diffusion.utils.fast_paths`).

    Args:
        network: a built Keras model.
        inputs: what `network` is called with (a batch of one image, for
            FLOPs per image).

    Returns:
        dict: FLOPs by kind (`conv`, `dense`, `attention`) and `total`.
    """
    import math

    import keras

    from keras_diffusion.utils import fast_paths

    counts = {"conv": 0, "dense": 0, "attention": 0}

    def conv(layer, args, out):
        kh, kw, cin, cout = layer.kernel.shape
        return 2 * math.prod(out.shape[:-1]) * kh * kw * cin * cout

    def conv_transpose(layer, args, out):
        kh, kw, cout, cin = layer.kernel.shape
        return 2 * math.prod(args[0].shape[:-1]) * kh * kw * cin * cout

    def dense(layer, args, out):
        return 2 * math.prod(args[0].shape[:-1]) * math.prod(layer.kernel.shape)

    def attention(layer, args, out):
        query, value = args[0], args[1]
        batch, queries, channels = query.shape
        keys = value.shape[1]
        heads, key_dim = layer.num_heads, layer.key_dim
        value_dim = layer.value_dim or key_dim
        out_channels = out.shape[-1]
        return 2 * batch * (
            queries * channels * heads * key_dim          # query projection
            + keys * channels * heads * key_dim           # key projection
            + keys * channels * heads * value_dim         # value projection
            + queries * keys * heads * (key_dim + value_dim)  # scores, sums
            + queries * heads * value_dim * out_channels  # output projection
        )

    kinds = ((keras.layers.MultiHeadAttention, "attention", attention),
             (keras.layers.Conv2DTranspose, "conv", conv_transpose),
             (keras.layers.Conv2D, "conv", conv),
             (keras.layers.Dense, "dense", dense))
    wrapped = []
    for layer in network._flatten_layers(include_self=False, recursive=True):
        for cls, kind, formula in kinds:
            if isinstance(layer, cls):
                wrapped.append(layer)
                layer.call = _counting(layer, layer.call, kind, formula, counts)
                break
    try:
        with fast_paths.disabled("transposed_conv"):
            network(inputs)
    finally:
        for layer in wrapped:
            del layer.call
    counts["total"] = sum(counts.values())
    return counts


def _counting(layer, call, kind, formula, counts):
    """`call`, adding `formula`'s FLOPs of each call to `counts[kind]`."""

    def counted(*args, **kwargs):
        out = call(*args, **kwargs)
        counts[kind] += formula(layer, args, out)
        return out

    return counted
