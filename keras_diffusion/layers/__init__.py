"""Building blocks of the networks: Keras 3 layers written with `keras.ops`."""

from keras_diffusion.layers.attention_block import AttentionBlock
from keras_diffusion.layers.conv2d import Conv2D
from keras_diffusion.layers.cross_attention import CrossAttention
from keras_diffusion.layers.downsample import Downsample
from keras_diffusion.layers.group_norm import GroupNorm
from keras_diffusion.layers.res_block import ResBlock
from keras_diffusion.layers.sinusoidal_embedding import SinusoidalEmbedding
from keras_diffusion.layers.upsample import Upsample

__all__ = [
    "AttentionBlock",
    "Conv2D",
    "CrossAttention",
    "Downsample",
    "GroupNorm",
    "ResBlock",
    "SinusoidalEmbedding",
    "Upsample",
]
