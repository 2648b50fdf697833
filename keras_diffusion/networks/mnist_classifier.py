import keras

from keras_diffusion.presets import PresetMixin


@keras.saving.register_keras_serializable(package="keras_diffusion")
class MNISTClassifier(PresetMixin, keras.Model):
    """A small CNN that classifies digits and exposes its penultimate features.

    Each entry of `widths` adds a stage `Conv3x3 -> BatchNorm -> ReLU` twice,
    then a 2x2 max-pool (28 -> 14 -> 7 -> 3 pixels with the default three
    stages). The last stage's map is flattened, so the features keep where
    the strokes are, then come a ReLU `Dense(feature_dim)` (the `"features"`
    output), dropout, and a `Dense(num_classes)` (the `"logits"` output).

    It is the judge of `keras_diffusion.metrics.Evaluator`: FID is measured
    in its feature space, and its class probabilities give the confident
    rate and the class accuracy of generated digits. The shipped weights
    (`load_model("evaluator")`) come from `kd train evaluator`.

    Args:
        image_shape: tuple `(height, width, channels)`.
        widths: tuple of ints, channels of the convolutions at each stage.
        feature_dim: int, size of the feature layer.
        num_classes: int, number of classes.
        dropout: float, dropout rate between the features and the logits.
        **kwargs: standard `keras.Model` arguments.

    Call arguments:
        inputs: tensor of shape `(batch, height, width, channels)`, images
            in [-1, 1].
        training: bool, whether batch normalization uses batch statistics
            and dropout is active.

    Returns:
        A dict with `"features"`, shape `(batch, feature_dim)`, and
        `"logits"`, shape `(batch, num_classes)`.

    Example:
    >>> classifier = MNISTClassifier()
    >>> outputs = classifier(keras.random.uniform((2, 28, 28, 1), -1, 1))
    >>> outputs["features"].shape, outputs["logits"].shape
    ((2, 128), (2, 10))
    """

    def __init__(
        self,
        image_shape=(28, 28, 1),
        widths=(32, 64, 64),
        feature_dim=128,
        num_classes=10,
        dropout=0.3,
        **kwargs,
    ):
        image_shape = tuple(image_shape)
        widths = tuple(widths)
        _check_config(image_shape, widths, feature_dim, num_classes, dropout)

        images = keras.Input(image_shape, name="images")
        x = images
        for stage, width in enumerate(widths):
            for index in range(2):
                x = keras.layers.Conv2D(
                    width, 3, padding="same", use_bias=False,
                    name=f"stage{stage}_conv{index}",
                )(x)
                x = keras.layers.BatchNormalization(
                    momentum=0.9, name=f"stage{stage}_norm{index}"
                )(x)
                x = keras.layers.Activation("relu", name=f"stage{stage}_relu{index}")(x)
            x = keras.layers.MaxPooling2D(2, name=f"stage{stage}_pool")(x)
        x = keras.layers.Flatten(name="flatten")(x)
        features = keras.layers.Dense(feature_dim, activation="relu", name="features")(x)
        x = keras.layers.Dropout(dropout, name="dropout")(features)
        logits = keras.layers.Dense(num_classes, name="logits")(x)

        super().__init__(
            inputs=images,
            outputs={"features": features, "logits": logits},
            **kwargs,
        )
        self.image_shape = image_shape
        self.widths = widths
        self.feature_dim = feature_dim
        self.num_classes = num_classes
        self.dropout = dropout

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "image_shape": self.image_shape,
            "widths": self.widths,
            "feature_dim": self.feature_dim,
            "num_classes": self.num_classes,
            "dropout": self.dropout,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _check_config(image_shape, widths, feature_dim, num_classes, dropout):
    if len(image_shape) != 3:
        raise ValueError(
            f"`image_shape` must be (height, width, channels). Got {image_shape}"
        )
    if not widths or any(int(w) <= 0 for w in widths):
        raise ValueError(f"`widths` must be positive ints. Got {widths}")
    factor = 2 ** len(widths)
    if image_shape[0] < factor or image_shape[1] < factor:
        raise ValueError(
            f"Images of size {image_shape[:2]} are too small for {len(widths)} "
            f"pooling stages; use fewer `widths`."
        )
    if feature_dim < 1:
        raise ValueError(f"`feature_dim` must be >= 1. Got {feature_dim}")
    if num_classes < 2:
        raise ValueError(f"`num_classes` must be >= 2. Got {num_classes}")
    if not 0 <= dropout < 1:
        raise ValueError(f"`dropout` must be in [0, 1). Got {dropout}")
