"""Recipes: what `kd train KIND` builds and trains, one object per kind.

A `Recipe` holds a kind's network settings and training defaults, and
builds its model (`build`) and optimizer (`optimizer`). The recipe classes
differ in the model they build: `DiffusionRecipe` (a `DDPM`; it and the
flow recipes share `UNetRecipe`),
`LatentDiffusionRecipe`, `FlowRecipe`, `LatentFlowRecipe`, `VAERecipe`,
`ClassifierRecipe` (a `NoisyClassifier`), `ReflowRecipe` (Flow-2, copied
from a trained flow) and `EvaluatorRecipe` (the MNIST judge). `RECIPES`
maps each kind to its recipe; a new kind is one more entry. The figures in
`docs/` come from these recipes.

A recipe builds for the data it trains on: `build(image_shape=...,
num_classes=...)` overrides the shapes in its settings (the shipped
recipes are written for 28x28x1 MNIST digits, 10 classes).
"""

import dataclasses
import inspect

import keras

from keras_diffusion.models import DDPM
from keras_diffusion.models import VAE
from keras_diffusion.models import LatentDiffusion
from keras_diffusion.models import LatentRectifiedFlow
from keras_diffusion.models import NoisyClassifier
from keras_diffusion.models import RectifiedFlow
from keras_diffusion.networks import TimeConditionedClassifier
from keras_diffusion.networks import UNet
from keras_diffusion.networks import VAEDecoder
from keras_diffusion.networks import VAEEncoder


@dataclasses.dataclass(frozen=True, kw_only=True)
class Recipe:
    """A `kd train` kind: its network settings and training defaults.

    Args:
        name: the kind, as `kd train` takes it.
        description: one line on what the kind trains.
        learning_rate: float, the peak learning rate.
        batch_size: int, images per optimizer step.
        max_steps: int, optimizer steps of a run (`None`: the evaluator
            trains for epochs).
        network: dict of the network's settings.
    """

    name: str
    description: str
    learning_rate: float
    batch_size: int = 128
    max_steps: "int | None" = 3000
    network: dict = dataclasses.field(default_factory=dict)

    needs_vae = False  # trains on a VAE's latents
    draws_samples = True  # generates images (FID while training, grids)
    from_flow = False  # starts from a trained flow (reflow)

    @property
    def conditional(self):
        """Whether it trains on class labels."""
        return self.network.get("num_classes") is not None

    def network_settings(self, image_shape=None, num_classes=None):
        """`network`, with the data's `image_shape` and `num_classes` if given."""
        settings = dict(self.network)
        if image_shape is not None:
            settings["image_shape"] = tuple(image_shape)
        if num_classes is not None and self.conditional:
            settings["num_classes"] = int(num_classes)
        return settings

    def build(self, seed=None, vae=None, latent_scale=1.0, image_shape=None,
              num_classes=None):
        """The recipe's model, uncompiled. Latent recipes need a trained
        `vae` and its `latent_scale`."""
        raise NotImplementedError

    @property
    def halvings(self):
        """How many times the network halves an image's height and width
        (one fewer than its levels of `widths`)."""
        return len(self.network.get("widths", (1,))) - 1

    def check_image_shape(self, image_shape):
        """Raises `ValueError`, saying what would work, unless the networks
        can take images of `image_shape` (their height and width must
        halve `halvings` times)."""
        factor = 2 ** self.halvings
        height, width = image_shape[:2]
        if height % factor == 0 and width % factor == 0:
            return
        lower = [max(factor, size // factor * factor) for size in (height, width)]
        raise ValueError(
            f"`kd train {self.name}` halves the images {self.halvings} times, so "
            f"their height and width must be multiples of {factor}; these are "
            f"{height}x{width}. Resize them (`image_size`), to "
            f"{lower[0]} or {lower[0] + factor} for instance."
        )

    def optimizer(self, learning_rate=None, total_steps=None):
        """The optimizer it trains with (`learning_rate` overrides the
        recipe's; `total_steps`, the run's length, matters to a decaying
        learning rate)."""
        return keras.optimizers.Adam(learning_rate or self.learning_rate)

    def replace(self, **changes):
        """A copy with some settings changed (`network` entries merge)."""
        if "network" in changes:
            changes["network"] = {**self.network, **changes["network"]}
        return dataclasses.replace(self, **changes)


@dataclasses.dataclass(frozen=True, kw_only=True)
class UNetRecipe(Recipe):
    """A model with a `UNet`, trained with AdamW and weight EMA: the base
    of the diffusion and flow recipes.

    Args:
        cond_drop_prob: the rate of condition dropout (conditional networks).
        ema_momentum: the weight EMA's momentum.
        learning_rate_decay: `"constant"`, or `"cosine"`: a linear warm-up
            over `warmup_steps`, then a cosine decay to a tenth of
            `learning_rate` at the run's last step.
        warmup_steps: int, steps of the warm-up (`"cosine"` only).
    """

    cond_drop_prob: float = 0.1
    ema_momentum: float = 0.995
    learning_rate_decay: str = "constant"
    warmup_steps: int = 0

    model_class = None  # set by the subclasses

    def model_settings(self):
        """The model's own settings (beyond the network and the seed)."""
        return {}

    def build(self, seed=None, vae=None, latent_scale=1.0, image_shape=None,
              num_classes=None):
        network = UNet(**self.network_settings(image_shape, num_classes))
        settings = dict(seed=seed, cond_drop_prob=self.cond_drop_prob,
                        name=self.name, **self.model_settings())
        if self.needs_vae:
            if vae is None:
                raise ValueError(f"Recipe {self.name!r} needs a trained VAE.")
            return self.model_class(network, vae, latent_scale, **settings)
        return self.model_class(network, **settings)

    def optimizer(self, learning_rate=None, total_steps=None):
        """AdamW with weight EMA; `total_steps` (default `max_steps`) is
        where a `"cosine"` decay ends."""
        learning_rate = learning_rate or self.learning_rate
        if self.learning_rate_decay == "cosine":
            total_steps = total_steps or self.max_steps
            learning_rate = keras.optimizers.schedules.CosineDecay(
                0.0 if self.warmup_steps else learning_rate,
                decay_steps=max(total_steps - self.warmup_steps, 1), alpha=0.1,
                warmup_target=learning_rate if self.warmup_steps else None,
                warmup_steps=self.warmup_steps,
            )
        elif self.learning_rate_decay != "constant":
            raise ValueError(f"`learning_rate_decay` must be 'constant' or "
                             f"'cosine'. Got {self.learning_rate_decay!r}")
        return keras.optimizers.AdamW(
            learning_rate, weight_decay=1e-4, use_ema=True,
            ema_momentum=self.ema_momentum,
        )


@dataclasses.dataclass(frozen=True, kw_only=True)
class DiffusionRecipe(UNetRecipe):
    """A pixel-space `DDPM`.

    Args:
        schedule: the noise schedule, `"linear"` or `"cosine"`.
        loss_weighting: `"uniform"` or `"min_snr"` (see `DDPM`).
        prediction: `"epsilon"` or `"v"`, what the network predicts.
        pred_noise_scale: what the trained model's samplers multiply its
            noise predictions by (see `DDPM`).
        input_perturbation: the gamma of DDPM-IP's training inputs (see
            `DDPM`); 0 trains without.
    """

    schedule: str = "linear"
    loss_weighting: str = "uniform"
    prediction: str = "epsilon"
    pred_noise_scale: float = 1.0
    input_perturbation: float = 0.0

    model_class = DDPM

    def model_settings(self):
        settings = {"schedule": self.schedule}
        if self.loss_weighting != "uniform":
            settings["loss_weighting"] = self.loss_weighting
        if self.prediction != "epsilon":
            settings["prediction"] = self.prediction
        if self.pred_noise_scale != 1.0:
            settings["pred_noise_scale"] = self.pred_noise_scale
        if self.input_perturbation:
            settings["input_perturbation"] = self.input_perturbation
        return settings


class _OnLatents:
    """Mixed into a recipe whose network works on a trained VAE's latents:
    the VAE, not the images, sets the network's input shape."""

    needs_vae = True
    halvings = 0  # the VAE halves the images (see `VAERecipe`)

    def build(self, seed=None, vae=None, latent_scale=1.0, image_shape=None,
              num_classes=None):
        recipe = self
        if vae is not None:
            recipe = self.replace(network={"image_shape": vae.latent_shape})
        return super(_OnLatents, recipe).build(seed, vae, latent_scale, None,
                                               num_classes)


@dataclasses.dataclass(frozen=True, kw_only=True)
class LatentDiffusionRecipe(_OnLatents, DiffusionRecipe):
    """A `LatentDiffusion` on a trained VAE's latents."""

    model_class = LatentDiffusion


_FLOW_DEFAULTS = {
    name: inspect.signature(RectifiedFlow).parameters[name].default
    for name in ("time_sampling", "velocity_loss", "sampling_shift",
                 "zero_time_share")
}


@dataclasses.dataclass(frozen=True, kw_only=True)
class FlowRecipe(UNetRecipe):
    """A pixel-space `RectifiedFlow` with a `UNet`.

    Args:
        time_sampling: how training draws t (see `RectifiedFlow`).
        velocity_loss: the loss on the velocity, `"mse"` or
            `"pseudo_huber"` (see `RectifiedFlow`).
        sampling_shift: the time grid's shift that the trained flow samples
            with (see `RectifiedFlow`).
        zero_time_share: the share of each batch trained at t = 0 (see
            `RectifiedFlow`).
    """

    # The defaults are `RectifiedFlow`'s own, read from its signature so
    # that each lives in one place.
    time_sampling: str = _FLOW_DEFAULTS["time_sampling"]
    velocity_loss: str = _FLOW_DEFAULTS["velocity_loss"]
    sampling_shift: float = _FLOW_DEFAULTS["sampling_shift"]
    zero_time_share: float = _FLOW_DEFAULTS["zero_time_share"]

    model_class = RectifiedFlow

    def model_settings(self):
        return {name: getattr(self, name) for name in _FLOW_DEFAULTS}


@dataclasses.dataclass(frozen=True, kw_only=True)
class LatentFlowRecipe(_OnLatents, FlowRecipe):
    """A `LatentRectifiedFlow` on a trained VAE's latents."""

    model_class = LatentRectifiedFlow


@dataclasses.dataclass(frozen=True, kw_only=True)
class VAERecipe(Recipe):
    """The `VAE` behind the latent recipes: its latent is a quarter of the
    image's height and width.

    Args:
        latent_channels: channels of the latent.
        kl_weight: weight of the KL term.
    """

    latent_channels: int = 4
    kl_weight: float = 1e-3

    draws_samples = False
    halvings = 2

    def build(self, seed=None, vae=None, latent_scale=1.0, image_shape=None,
              num_classes=None):
        height, width, channels = tuple(image_shape or (28, 28, 1))
        self.check_image_shape((height, width))
        latent_shape = (height // 4, width // 4, self.latent_channels)
        encoder = VAEEncoder(image_shape=(height, width, channels),
                             latent_channels=self.latent_channels)
        decoder = VAEDecoder(latent_shape=latent_shape, image_channels=channels)
        return VAE(encoder, decoder, kl_weight=self.kl_weight, seed=seed,
                   name=self.name)


@dataclasses.dataclass(frozen=True, kw_only=True)
class ClassifierRecipe(Recipe):
    """A `NoisyClassifier` of noisy images, for classifier guidance of the
    DDPM trained with the same `schedule`; `max_shift`, the random shift of
    its training images (`NoisyClassifier`)."""

    schedule: str = "linear"
    max_shift: int = 0

    draws_samples = False

    def build(self, seed=None, vae=None, latent_scale=1.0, image_shape=None,
              num_classes=None):
        network = TimeConditionedClassifier(
            **self.network_settings(image_shape, num_classes))
        return NoisyClassifier(network, schedule=self.schedule, seed=seed,
                               max_shift=self.max_shift, name=self.name)

    def optimizer(self, learning_rate=None, total_steps=None):
        return keras.optimizers.AdamW(learning_rate or self.learning_rate,
                                      weight_decay=1e-4)


@dataclasses.dataclass(frozen=True, kw_only=True)
class ReflowRecipe(FlowRecipe):
    """A flow trained on `num_pairs` (noise, image) pairs, each drawn with
    `pair_steps` steps of `pair_sampler` (`"euler"` or `"heun"`) of a
    trained flow, starting from its weights and with its architecture
    (`train_reflow(FLOW, kind=...)`), with this recipe's `time_sampling`,
    `zero_time_share`, `velocity_loss` and `sampling_shift` whatever the
    first flow's were.

    Three kinds: `reflow` trains Flow-2 with U-shaped t (`"u_shaped"`,
    which trains both ends more: a few-step Flow-2 is evaluated at the
    noise end, where logit-normal t almost never lands) on Heun pairs;
    `reflow-uniform` is its first recipe, at uniform t on Euler pairs;
    `distill` trains a one-step student at t = 0 only
    (`time_sampling="zero"`), best from Flow-2, whose few-step samples
    are already good."""

    num_pairs: int = 50000
    pair_steps: int = 32
    pair_sampler: str = "euler"

    from_flow = True

    def build(self, seed=None, vae=None, latent_scale=1.0, image_shape=None,
              num_classes=None):
        raise ValueError(
            f"A {self.name} model starts from a trained flow: use "
            f"`kd train {self.name} --from FLOW` (`train.train_reflow`)."
        )


@dataclasses.dataclass(frozen=True, kw_only=True)
class EvaluatorRecipe(Recipe):
    """The `MNISTClassifier` that `kd evaluate` scores samples with, trained
    for `epochs` with augmentation (`train_evaluator.train_evaluator`)."""

    epochs: int = 15

    draws_samples = False


_PIXEL_UNET = {
    "image_shape": (28, 28, 1),
    "widths": (16, 32, 64),
    "blocks_per_level": 1,
    "attention_levels": (2,),
    "embedding_dim": 128,
}
_LATENT_UNET = {
    "image_shape": (7, 7, 4),
    "widths": (64,),
    "blocks_per_level": 2,
    "attention_levels": (0,),
    "embedding_dim": 128,
}
_CLASSES = {"num_classes": 10}

RECIPES = {recipe.name: recipe for recipe in (
    # v-prediction, min-SNR-5 and batch 64 reach a given FID in about a
    # third of the first recipe's CPU time (docs/ddpm.md#time-to-quality);
    # each recipe's CPU cost is in docs/results.md#shipped-weights. A
    # cosine learning rate and EMA 0.999, as `ldm`, lower every sampler's
    # FID at the same cost (docs/ddpm.md#a-cosine-learning-rate-and-a-longer-average).
    # Its model samples with noise predictions scaled by 1.04
    # (docs/ddpm.md#scaled-noise-predictions).
    DiffusionRecipe(name="ddpm", description="pixel-space DDPM, unconditional",
                    network=_PIXEL_UNET, learning_rate=1e-3, batch_size=64,
                    max_steps=7000, loss_weighting="min_snr", prediction="v",
                    ema_momentum=0.999, learning_rate_decay="cosine",
                    warmup_steps=200, pred_noise_scale=1.04),
    # The first `ddpm` recipe (noise prediction, unweighted loss, batch
    # 128), kept so that the comparison can be rerun.
    DiffusionRecipe(name="ddpm-eps", description="the first ddpm recipe "
                    "(noise prediction, unweighted loss, batch 128)",
                    network=_PIXEL_UNET, learning_rate=1e-3),
    VAERecipe(name="vae", description="VAE for the latent kinds (a 7x7x4 latent "
              "for 28x28 images)",
              learning_rate=2e-3, max_steps=1500),
    # The pixel recipe on latents, with a longer weight average (EMA 0.999)
    # and a cosine learning rate (docs/latent.md#the-shipped-latent-ddpm);
    # noise predictions scaled by 1.02 (docs/latent.md#scaled-noise-predictions).
    LatentDiffusionRecipe(name="ldm", description="latent DDPM, unconditional",
                          network=_LATENT_UNET, learning_rate=1e-3, batch_size=64,
                          max_steps=17500, loss_weighting="min_snr",
                          prediction="v", ema_momentum=0.999,
                          learning_rate_decay="cosine", warmup_steps=200,
                          pred_noise_scale=1.02),
    # The first `ldm` recipe (noise prediction, batch 128), for comparison.
    LatentDiffusionRecipe(name="ldm-eps", description="the first ldm recipe "
                          "(noise prediction, unweighted loss, batch 128)",
                          network=_LATENT_UNET, learning_rate=1e-3),
    # The class enters as an input channel and through cross-attention;
    # condition dropout trains the unconditional prediction for guidance.
    LatentDiffusionRecipe(
        name="cfg", description="latent DDPM, class-conditional, with guidance",
        network=dict(_LATENT_UNET, **_CLASSES, class_input_channel=True,
                     class_cross_attention=True), learning_rate=1e-3),
    # `cfg` with the `ldm` recipe's training (v-prediction, min-SNR-5,
    # batch 64, EMA): for Fashion-MNIST, whose clothes the first `cfg`
    # recipe left at about 2x the floor (docs/own_data.md).
    LatentDiffusionRecipe(
        name="cfg-v", description="cfg trained as ldm (v-prediction, min-SNR, "
        "batch 64, EMA)",
        network=dict(_LATENT_UNET, **_CLASSES, class_input_channel=True,
                     class_cross_attention=True), learning_rate=1e-3,
        batch_size=64, max_steps=12000, loss_weighting="min_snr",
        prediction="v", ema_momentum=0.999),
    # The two conditioning routes of "cfg" on their own, for comparing which
    # carries the class better (docs/guidance.md).
    LatentDiffusionRecipe(
        name="cfg-channel", description="cfg with the class as an input channel only",
        network=dict(_LATENT_UNET, **_CLASSES, class_input_channel=True,
                     class_cross_attention=False), learning_rate=1e-3),
    LatentDiffusionRecipe(
        name="cfg-xattn", description="cfg with the class through cross-attention only",
        network=dict(_LATENT_UNET, **_CLASSES, class_input_channel=False,
                     class_cross_attention=True), learning_rate=1e-3),
    # Logit-normal t and batch 64 (docs/rectified_flow.md, "Time to
    # quality: a longer, logit-normal Flow-1"), then a cosine learning rate
    # and a longer weight average (docs/rectified_flow.md#the-shipped-flows).
    FlowRecipe(name="rf-pixel", description="pixel rectified flow (the ddpm UNet)",
               network=_PIXEL_UNET, learning_rate=1e-3, batch_size=64,
               max_steps=8000, time_sampling="logit_normal",
               learning_rate_decay="cosine", warmup_steps=200, ema_momentum=0.999),
    # The first `rf-pixel` recipe (uniform t, batch 128), kept so that the
    # comparison can be rerun.
    FlowRecipe(name="rf-pixel-uniform", description="the first rf-pixel recipe "
               "(uniform t, batch 128)", network=_PIXEL_UNET, learning_rate=1e-3),
    # The rf-pixel recipe on latents (docs/rectified_flow.md#the-shipped-flows).
    LatentFlowRecipe(name="rf-latent",
                     description="latent rectified flow (the ldm UNet)",
                     network=_LATENT_UNET, learning_rate=1e-3, batch_size=64,
                     max_steps=18000, time_sampling="logit_normal",
                     learning_rate_decay="cosine", warmup_steps=200,
                     ema_momentum=0.999),
    LatentFlowRecipe(name="rf-latent-uniform", description="the first rf-latent "
                     "recipe (uniform t, batch 128)",
                     network=_LATENT_UNET, learning_rate=1e-3),
    # Heun pairs: closer to Flow-1's ODE than Euler's at the same evaluations
    # (docs/rectified_flow.md#pairs-drawn-with-heun); the rf recipes' cosine
    # learning rate and EMA (#a-cosine-learning-rate-for-flow-2); the
    # straighter Flow-2 samples best on a grid shifted further (#the-time-grid);
    # nine tenths of each batch at t = 0, where every few-step sample starts
    # (#flow-2-trained-at-t--0-too, #how-large-a-share).
    ReflowRecipe(name="reflow",
                 description="Flow-2 on pairs drawn from a trained flow (--from)",
                 learning_rate=1e-3, max_steps=4000, num_pairs=50000,
                 pair_steps=8, pair_sampler="heun", time_sampling="u_shaped",
                 zero_time_share=0.9, learning_rate_decay="cosine",
                 warmup_steps=200, ema_momentum=0.999, sampling_shift=6.0),
    ReflowRecipe(name="reflow-uniform", description="the first reflow recipe "
                 "(uniform t, Euler pairs)", learning_rate=1e-3, max_steps=4000,
                 num_pairs=50000, pair_steps=32),
    # The paper's "2-rectified flow + distill": pairs from Flow-2 (straight,
    # so 8 Euler steps are close to its ODE), regressed in one step at t = 0
    # (docs/rectified_flow.md#a-one-step-student).
    ReflowRecipe(name="distill",
                 description="one-step student of a flow, from its pairs at t = 0 "
                 "(--from; Flow-2 best)",
                 learning_rate=1e-3, max_steps=2000, num_pairs=20000,
                 pair_steps=8, time_sampling="zero"),
    EvaluatorRecipe(name="evaluator",
                    description="the MNIST classifier behind kd evaluate",
                    learning_rate=2e-3, max_steps=None,
                    network={"image_shape": (28, 28, 1), **_CLASSES}),
    # For classifier guidance of "ddpm" (same schedule).
    ClassifierRecipe(name="classifier",
                     description="noisy-image classifier for classifier guidance",
                     network={"image_shape": (28, 28, 1), "widths": (16, 32, 64),
                              "embedding_dim": 64, **_CLASSES},
                     learning_rate=2e-3, max_steps=8000),
    # Wider, and trained on digits shifted by up to 2 pixels as the
    # evaluator is: a better guided FID, no better weakest class, so not
    # shipped (docs/classifier_guidance.md#why-the-weakest-class-stays-below-97).
    ClassifierRecipe(name="classifier-wide",
                     description="classifier, widths 24-48-96, trained on "
                     "shifted digits (for comparison)",
                     network={"image_shape": (28, 28, 1), "widths": (24, 48, 96),
                              "embedding_dim": 64, **_CLASSES},
                     learning_rate=2e-3, max_steps=8000, max_shift=2),
)}


def get_recipe(kind):
    """The `Recipe` of `kind`; `ValueError` naming the kinds if unknown."""
    if isinstance(kind, Recipe):
        return kind
    if kind not in RECIPES:
        raise ValueError(f"Unknown model kind {kind!r}; choose one of "
                         f"{', '.join(RECIPES)}.")
    return RECIPES[kind]


def build_model(kind, seed=None, learning_rate=None, compile=True, vae=None,
                latent_scale=1.0, image_shape=None, num_classes=None,
                total_steps=None):
    """Builds (and compiles) the model of a recipe (a kind or a `Recipe`)."""
    recipe = get_recipe(kind)
    model = recipe.build(seed=seed, vae=vae, latent_scale=latent_scale,
                         image_shape=image_shape, num_classes=num_classes)
    if compile:
        model.compile(optimizer=recipe.optimizer(learning_rate, total_steps))
    return model
