"""`kd`: a thin click layer; each command calls one library function."""

import math
import os
import sys

import click

BACKENDS = ("tensorflow", "jax", "torch")
TRAIN_KINDS = ("ddpm", "vae", "ldm", "cfg", "cfg-channel", "cfg-xattn",
               "rf-pixel", "rf-latent", "reflow", "evaluator", "classifier")
CLASSIFIER_HELP = ("Classifier guidance of an unconditional DDPM (--model ddpm): "
                   "a noisy-image classifier, shipped name (`classifier`) or "
                   ".keras path; steers toward --class, or without it one row "
                   "per digit. Samples with ddpm in 50 steps unless --sampler "
                   "is given.")
CLASSIFIER_SCALE_HELP = ("Classifier guidance scale, >= 0 (0: unguided; default: "
                         "sampling.DEFAULT_CLASSIFIER_SCALE).")
SAMPLERS = ("ddpm", "ddim", "euler", "heun")
SAMPLER_HELP = ("ddpm or ddim for diffusion models, euler or heun for flows "
                "(default: ddim, or euler for a flow).")
STEPS_HELP = ("Sampling steps (default: 1000 for ddpm, 50 for ddim, 16 for euler, "
              "8 for heun).")


class KDError(click.ClickException):
    """A one-line error on stderr and exit status 2 (bad input)."""

    exit_code = 2

    def show(self, file=None):
        click.echo(f"Error: {self.format_message()}", err=True)


def _prepare_backend():
    """Checks KERAS_BACKEND and quiets TensorFlow before Keras is imported."""
    backend = os.environ.get("KERAS_BACKEND")
    if backend is not None and backend not in BACKENDS:
        raise KDError(
            f"KERAS_BACKEND={backend!r} is not supported; use one of "
            f"{', '.join(BACKENDS)}."
        )
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if backend == "jax":
        from keras_diffusion.utils.jax_cpu import split_cpu_into_devices

        split_cpu_into_devices()  # JAX on CPU: train on every core


def _run(function, *args, **kwargs):
    """Calls a library function, turning its input errors into `KDError`."""
    from keras_diffusion.data import DataError
    from keras_diffusion.pretrained import ModelFileError
    from keras_diffusion.training import TrainingError

    try:
        return function(*args, **kwargs)
    except (DataError, ModelFileError, ValueError, FileNotFoundError) as error:
        raise KDError(_one_line(error)) from None
    except TrainingError as error:
        click.echo()  # end the line of Keras' progress bar (on stdout)
        raise click.ClickException(_one_line(error)) from None


def _one_line(error):
    return " ".join(str(error).split())


def _given(flags):
    """`"--a is"` / `"--a, --b are"` for the flags given (not `None`), or ""."""
    given = [name for name, value in flags.items() if value is not None]
    if not given:
        return ""
    return f"{', '.join(given)} {'is' if len(given) == 1 else 'are'}"


def _positive(ctx, param, value):
    if value is not None and value < 1:
        raise click.BadParameter(f"must be >= 1, got {value}.")
    return value


MAX_SEED = 2**32 - 1


def _seed(ctx, param, value):
    if value is not None and not 0 <= value <= MAX_SEED:
        raise click.BadParameter(f"must be in 0 to {MAX_SEED}, got {value}.")
    return value


def _check_classifier_flags(classifier, classifier_scale):
    """--classifier-scale: >= 0, finite, and only with --classifier."""
    if classifier_scale is None:
        return
    if not (classifier_scale >= 0 and math.isfinite(classifier_scale)):
        raise KDError(f"--classifier-scale must be >= 0 (and finite). Got "
                      f"{classifier_scale}")
    if classifier is None:
        raise KDError("--classifier-scale needs --classifier (a noisy-image "
                      "classifier, such as the shipped `classifier`).")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="keras-diffusion")
def cli():
    """kd: train and sample diffusion and flow models on small images.

    The backend comes from KERAS_BACKEND (tensorflow, jax or torch).
    """
    _prepare_backend()


@cli.command()
@click.argument("kind", type=click.Choice(TRAIN_KINDS))
@click.option("--data", type=click.Path(), default=None,
              help="MNIST IDX directory or .npz (default: tensorflow-datasets, "
                   "which needs internet).")
@click.option("--epochs", type=int, default=None, callback=_positive,
              help="Passes over the data (default: enough for the recipe's step count).")
@click.option("--max-steps", type=int, default=None, callback=_positive,
              help="Stop after this many optimizer steps.")
@click.option("--batch-size", type=int, default=None, callback=_positive,
              help="Images per step (default: the recipe's).")
@click.option("--learning-rate", type=float, default=None,
              help="Peak learning rate (default: the recipe's).")
@click.option("--out", "out_dir", type=click.Path(), default=None,
              help="Output directory (default: runs/KIND/).")
@click.option("--seed", type=int, default=0, show_default=True,
              callback=_seed)
@click.option("--vae", default=None,
              help="For the latent kinds (ldm, cfg, cfg-channel, cfg-xattn, "
                   "rf-latent): a trained VAE (.keras path or shipped name); "
                   "without it, one is trained first.")
@click.option("--from", "flow", default=None,
              help="For reflow: the trained flow (Flow-1; .keras path or "
                   "shipped name) whose pairs Flow-2 learns.")
@click.option("--pairs", "num_pairs", type=int, default=None, callback=_positive,
              help="For reflow: (noise, image) pairs to draw from Flow-1 "
                   "(default: the recipe's, 20000).")
@click.option("--pair-steps", type=int, default=None, callback=_positive,
              help="For reflow: Euler steps of Flow-1 per pair (default 100).")
@click.option("--distribute", is_flag=True,
              help="Train data-parallel on every device (JAX: and every host "
                   "given by KERAS_DISTRIBUTION_*); --batch-size is then the "
                   "global batch (see docs/distributed.md).")
def train(kind, data, epochs, max_steps, batch_size, learning_rate, out_dir, seed,
          vae, flow, num_pairs, pair_steps, distribute):
    """Train a model of KIND on MNIST; rerun the same command to resume.

    KIND `evaluator` trains the digit classifier that `kd evaluate` uses
    (in a few minutes; it does not resume). KIND `reflow` trains Flow-2 on
    pairs drawn from the flow given by --from, into OUT/pairs.npz and
    OUT/reflow.keras (see docs/rectified_flow.md). KIND `classifier` trains
    the noisy-image classifier of classifier guidance (`kd sample
    --classifier`; see docs/classifier_guidance.md).
    """
    from keras_diffusion.training import train as train_model
    from keras_diffusion.training import train_reflow

    if kind == "reflow" and flow is None:
        raise KDError("`kd train reflow` needs --from FLOW1 (a trained flow).")
    if distribute and kind in ("reflow", "evaluator"):
        raise KDError(f"--distribute does not apply to `kd train {kind}`; it "
                      "trains the diffusion, flow and VAE kinds.")
    reflow_only = {"--from": flow, "--pairs": num_pairs, "--pair-steps": pair_steps}
    other_only = {"--data": data, "--vae": vae}
    given = _given(other_only if kind == "reflow" else reflow_only)
    if given:
        raise KDError(
            f"{given} not used by `kd train reflow`, which trains on pairs drawn "
            "from --from." if kind == "reflow" else
            f"{given} only for `kd train reflow`, not for {kind!r}."
        )
    if kind == "reflow":
        path = _run(train_reflow, flow, num_pairs=num_pairs, epochs=epochs,
                    max_steps=max_steps, batch_size=batch_size, out_dir=out_dir,
                    seed=seed, learning_rate=learning_rate, pair_steps=pair_steps)
        click.echo(f"Saved {path}")
        return

    if kind == "evaluator":
        from keras_diffusion.evaluator_training import train_evaluator

        if max_steps is not None:
            raise KDError("--max-steps does not apply to `kd train evaluator`; "
                          "use --epochs.")
        path = _run(train_evaluator, data=data, epochs=epochs,
                    batch_size=batch_size, out_dir=out_dir, seed=seed,
                    learning_rate=learning_rate)
        click.echo(f"Saved {path}")
        return
    path = _run(train_model, kind, data=data, epochs=epochs, max_steps=max_steps,
                batch_size=batch_size, out_dir=out_dir, seed=seed,
                learning_rate=learning_rate, vae=vae,
                distribute=True if distribute else None)
    click.echo(f"Saved {path}")


@cli.command()
@click.option("--model", default="cfg", show_default=True,
              help="Shipped model name (see `kd info`) or .keras path.")
@click.option("--sampler", type=click.Choice(SAMPLERS), default=None,
              help=SAMPLER_HELP)
@click.option("--steps", type=int, default=None, callback=_positive,
              help=STEPS_HELP)
@click.option("--eta", type=float, default=0.0, show_default=True,
              help="DDIM noise scale (0: deterministic).")
@click.option("--num", type=int, default=None, callback=_positive,
              help="Number of images (default 16; 8 per class for a "
                   "class-conditional model without --class).")
@click.option("--class", "label", type=int, default=None,
              help="Digit to generate (class-conditional models, or with "
                   "--classifier); without it, one row per digit.")
@click.option("--guidance", type=float, default=None,
              help="Classifier-free guidance weight, >= 0 (default 4; 0 is "
                   "unconditional, 1 plain conditional).")
@click.option("--seed", type=int, default=0, show_default=True,
              callback=_seed)
@click.option("--out", type=click.Path(), default="samples.png",
              show_default=True, help=".png grid or .npz of images in [0, 1].")
@click.option("--animate", type=click.Path(), default=None,
              help="Also write a .gif of the sampling: the predicted images "
                   "after each step (at most 49), then the final grid.")
@click.option("--classifier", default=None, help=CLASSIFIER_HELP)
@click.option("--classifier-scale", type=float, default=None,
              help=CLASSIFIER_SCALE_HELP)
def sample(model, sampler, steps, eta, num, label, guidance, seed, out, animate,
           classifier, classifier_scale):
    """Sample images from a trained model."""
    from keras_diffusion.sampling import sample as sample_images

    if not 0 <= eta <= 1:  # also refuses NaN
        raise KDError(f"--eta must be in [0, 1] (0: deterministic DDIM, 1: DDPM's "
                      f"noise level). Got {eta}")
    if label is not None and not 0 <= label <= 9:
        raise KDError(f"--class must be a digit, 0-9. Got {label}")
    if guidance is not None and not (guidance >= 0 and math.isfinite(guidance)):
        raise KDError(f"--guidance must be >= 0 (and finite). Got {guidance}")
    if animate is not None and not animate.lower().endswith(".gif"):
        raise KDError(f"--animate {animate!r} must end in .gif.")
    _check_classifier_flags(classifier, classifier_scale)
    _run(sample_images, model=model, sampler=sampler, num_steps=steps,
         num_images=num, seed=seed, out=out, eta=eta, label=label,
         guidance=guidance, animate=animate, classifier=classifier,
         classifier_scale=classifier_scale)
    click.echo(f"Wrote {out}")
    if animate is not None:
        click.echo(f"Wrote {animate}")


@cli.command()
@click.option("--model", default=None,
              help="Shipped model name (see `kd info`) or .keras path to sample from.")
@click.option("--samples", type=click.Path(), default=None,
              help="Score this .npz instead: `images` in [0, 1] (from "
                   "`kd sample --out FILE.npz`) and optional `labels`.")
@click.option("--sampler", type=click.Choice(SAMPLERS), default=None,
              help=SAMPLER_HELP)
@click.option("--steps", type=int, default=None, callback=_positive,
              help=STEPS_HELP)
@click.option("--num", type=int, default=1000, show_default=True,
              callback=_positive, help="Number of images to sample.")
@click.option("--seed", type=int, default=0, show_default=True,
              callback=_seed)
@click.option("--data", type=click.Path(), default=None,
              help="MNIST IDX directory or .npz (default: tensorflow-datasets, "
                   "which needs internet).")
@click.option("--class", "label", type=int, default=None,
              help="Class-conditional models (or with --classifier): sample "
                   "only this digit (default: every digit in turn).")
@click.option("--guidance", type=float, default=None,
              help="Class-conditional models: guidance weight, >= 0 (default 4).")
@click.option("--classifier", default=None, help=CLASSIFIER_HELP)
@click.option("--classifier-scale", type=float, default=None,
              help=CLASSIFIER_SCALE_HELP)
@click.option("--json", "as_json", is_flag=True,
              help="Print the results as one JSON object.")
def evaluate(model, samples, sampler, steps, num, seed, data, label, guidance,
             classifier, classifier_scale, as_json):
    """Score samples with the shipped MNIST evaluator (see docs/evaluation.md).

    Samples --num images from --model, or reads --samples, then prints the
    FID against as many MNIST test images (in the evaluator's feature space),
    the floor (the FID of as many real training digits), the confident rate
    and, when the file has labels, the class accuracy.
    """
    import json

    from keras_diffusion.evaluation import evaluate as evaluate_samples

    if (model is None) == (samples is None):
        raise KDError("Pass exactly one of --model (sample, then score) and "
                      "--samples (score an .npz).")
    if samples is not None:
        from click.core import ParameterSource

        context = click.get_current_context()
        given = [f"--{name}" for name in ("sampler", "steps", "num", "seed",
                                          "label", "guidance", "classifier",
                                          "classifier_scale")
                 if context.get_parameter_source(name) != ParameterSource.DEFAULT]
        given = ["--class" if name == "--label" else name.replace("_", "-")
                 for name in given]
        if given:
            raise KDError(f"{', '.join(given)} apply only with --model, not "
                          "with --samples.")
    if label is not None and not 0 <= label <= 9:
        raise KDError(f"--class must be a digit, 0-9. Got {label}")
    _check_classifier_flags(classifier, classifier_scale)
    result = _run(evaluate_samples, model=model, samples=samples, sampler=sampler,
                  num_steps=steps, num_images=num, seed=seed, data=data,
                  progress=not as_json, label=label, guidance=guidance,
                  classifier=classifier, classifier_scale=classifier_scale)
    if as_json:
        click.echo(json.dumps(result))
        return
    rows = [
        ("samples", f"{result['num']}"),
        ("FID", f"{result['fid']:.2f}  (vs {result['num']} MNIST test images)"),
        ("floor", f"{result['floor']:.2f}  (real train vs test, same count)"),
        ("confident rate", f"{result['confident_rate']:.1%}  (p >= 0.9)"),
    ]
    if result["accuracy"] is not None:
        rows.append(("accuracy", f"{result['accuracy']:.1%}  (vs labels)"))
        per_class = result.get("class_accuracy") or {}
        if len(per_class) > 1:
            worst = min(per_class, key=per_class.get)
            rows.append(("per class", "  ".join(
                f"{label}:{value:.0%}" for label, value in sorted(per_class.items()))
                + f"  (lowest: {worst})"))
    if result["sampling_seconds"] is not None:
        guided = ("" if result["guidance"] is None
                  else f", guidance {result['guidance']:g}")
        if result.get("classifier_scale") is not None:
            guided += f", classifier scale {result['classifier_scale']:g}"
        rows.append(("sampling time", f"{result['sampling_seconds']:.1f} s  "
                     f"({result['sampler']}, {result['num_steps']} steps{guided})"))
    for name, value in rows:
        click.echo(f"{name:<16}{value}")


@cli.command()
def info():
    """Show the version, the active backend and the shipped models."""
    import keras

    from keras_diffusion import __version__
    from keras_diffusion.pretrained import PRETRAINED
    from keras_diffusion.pretrained import available_models

    from keras_diffusion.pretrained import WEIGHTS_DIR

    backend = keras.backend.backend()
    source = ("from KERAS_BACKEND" if os.environ.get("KERAS_BACKEND") else
              f"the default; set KERAS_BACKEND to {', '.join(BACKENDS)}")
    backend_version, devices = _backend_details(backend)
    click.echo(f"keras_diffusion {__version__}")
    click.echo(f"keras {keras.__version__}, backend {backend} ({source})")
    click.echo(f"{backend} {backend_version}, devices: {devices}")
    click.echo(f"python {sys.version.split()[0]}")
    click.echo(f"shipped models (in {WEIGHTS_DIR}):")
    present = set(available_models())
    width = max(len(name) for name in PRETRAINED)
    for name, (filename, description) in PRETRAINED.items():
        size = "missing"
        if name in present:
            size = f"{os.path.getsize(os.path.join(WEIGHTS_DIR, filename)) / 2**20:.1f} MiB"
        click.echo(f"  {name:<{width}} {size:>9}  {description}")


def _backend_details(backend):
    """(version, devices) of the active backend, e.g. `("2.19.0", "CPU")`."""
    if backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        return tf.__version__, f"CPU, {len(gpus)} GPU" if gpus else "CPU"
    if backend == "jax":
        import jax

        kinds = sorted({device.platform.upper() for device in jax.devices()})
        return jax.__version__, f"{len(jax.devices())} x {'/'.join(kinds)}"
    import torch

    count = torch.cuda.device_count()
    return torch.__version__, f"CPU, {count} GPU" if count else "CPU"


if __name__ == "__main__":
    cli()
