"""`kd`: a thin click layer; each command calls one library function."""

import functools
import os
import sys

import click

BACKENDS = ("tensorflow", "jax", "torch")
TRAIN_KINDS = ("ddpm", "ddpm-eps", "vae", "ldm", "ldm-eps", "cfg", "cfg-v",
               "cfg-channel", "cfg-xattn", "rf-pixel", "rf-pixel-uniform", "rf-latent",
               "rf-latent-uniform", "reflow", "reflow-uniform", "distill",
               "evaluator", "classifier", "classifier-wide")
# The kinds trained on a flow's pairs (--from).
PAIR_KINDS = ("reflow", "reflow-uniform", "distill")
CLASSIFIER_HELP = ("Classifier guidance of an unconditional DDPM (--model ddpm): "
                   "a noisy-image classifier, shipped name (`classifier`) or "
                   ".keras path; steers toward --class, or without it one row "
                   "per class. Samples with dpm-sde in 10 steps unless "
                   "--sampler is given.")
CLASSIFIER_SCALE_HELP = ("Classifier guidance scale, 0 to 100 (0: unguided; "
                         "default: guidance.DEFAULT_CLASSIFIER_SCALE, 5).")
SAMPLERS = ("ddpm", "ddim", "dpm", "dpm-sde", "euler", "heun")
SAMPLER_HELP = ("ddpm, ddim, dpm (DPM-Solver++ 2M) or dpm-sde (its SDE form) for "
                "diffusion models, euler or heun for flows (default: dpm-sde "
                "for an unconditional diffusion model, dpm for a "
                "class-conditional one, euler for a flow).")
EVALUATOR_HELP = ("The judge behind the FID: a classifier from `kd train evaluator "
                  "--data` (its .keras path or preset directory, with the "
                  "reference features it saved) for images other than MNIST "
                  "digits (default: the shipped MNIST `evaluator`).")
STEPS_HELP = ("Sampling steps (default: 1000 for ddpm, 50 for ddim, 10 for dpm "
              "and dpm-sde, "
              "16 for euler (1 for a one-step student of `kd train distill`), 8 "
              "for heun).")


class KDError(click.ClickException):
    """A one-line error on stderr and exit status 2 (bad input)."""

    exit_code = 2

    def show(self, file=None):
        click.echo(f"Error: {self.format_message()}", err=True)


def _prepare_backend(verbose=False):
    """Checks KERAS_BACKEND and quiets TensorFlow before Keras is imported
    (`verbose`: TensorFlow's own start-up lines are shown)."""
    backend = os.environ.get("KERAS_BACKEND")
    if backend is not None and backend not in BACKENDS:
        raise KDError(
            f"KERAS_BACKEND={backend!r} is not supported; use one of "
            f"{', '.join(BACKENDS)}."
        )
    if verbose:
        os.environ["KD_TF_LOGS"] = "1"  # see keras_diffusion.utils.quiet_tensorflow
    else:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def _computes(command):
    """Marks a command that runs Keras. Under PyTorch it first picks
    OpenMP's waiting policy for the machine's load (`openmp.py`); under JAX
    it asks for one CPU device per core, before JAX starts, and turns on
    the persistent compilation cache; here, after click has parsed the command's flags
    (the group's callback runs before that), so that a mistyped flag is
    refused without importing any framework."""

    @functools.wraps(command)
    def run_command(*args, **kwargs):
        if os.environ.get("KERAS_BACKEND") == "torch":
            from keras_diffusion_cli.openmp import choose_wait_policy

            choose_wait_policy()  # before PyTorch (and OpenMP) loads
        if os.environ.get("KERAS_BACKEND") == "jax":
            from keras_diffusion.utils.jax_cpu import split_cpu_into_devices

            split_cpu_into_devices()  # JAX on CPU: train on every core
        from keras_diffusion.utils.jax_cache import enable_compilation_cache

        enable_compilation_cache()  # JAX only (see the module)
        return command(*args, **kwargs)

    return run_command


def _run(function, *args, **kwargs):
    """Calls a library function, turning its input errors into `KDError`."""
    from keras_diffusion.data import DataError
    from keras_diffusion.presets import ModelFileError
    from keras_diffusion.app.train import TrainingError

    try:
        return function(*args, **kwargs)
    except (DataError, ModelFileError, ValueError, FileNotFoundError) as error:
        raise KDError(_in_flags(_one_line(error))) from None
    except TrainingError as error:
        click.echo()  # end the line of Keras' progress bar (on stdout)
        raise click.ClickException(_in_flags(_one_line(error))) from None


def _one_line(error):
    return " ".join(str(error).split())


# Library parameters that a command sets from a flag of another name
# (`sample(num_images=...)` from --num, held by click as `num`).
_SET_BY = {"num_images": "num", "num_steps": "steps", "labels": "label",
           "format": "export_format"}


def _in_flags(message):
    """A library message in the CLI's words: "`classifier_scale`" (a
    parameter of the function a command calls) becomes "--classifier-scale"
    when that command has such a flag."""
    context = click.get_current_context(silent=True)
    if context is None:
        return message
    flags = {param.name: param.opts[0] for param in context.command.params
             if isinstance(param, click.Option)}
    flags.update({name: flags[param] for name, param in _SET_BY.items()
                  if param in flags})
    for name, flag in flags.items():
        message = message.replace(f"`{name}`", flag)
    return message


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


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="keras-diffusion")
@click.option("--verbose", is_flag=True,
              help="Show TensorFlow's own start-up log lines (hidden by default).")
def cli(verbose):
    """kd: train and sample diffusion and flow models on small images.

    The backend comes from KERAS_BACKEND (tensorflow, jax or torch).
    """
    _prepare_backend(verbose)


@cli.command()
@click.argument("kind", type=click.Choice(TRAIN_KINDS))
@click.option("--data", type=click.Path(), default=None,
              help="The images: a folder of PNG/JPEG files (one sub-folder "
                   "per class for labels), an .npz, an MNIST IDX directory, "
                   "or tfds:NAME[:SPLIT] (default: MNIST through "
                   "tensorflow-datasets, which needs internet). Any size and "
                   "channel count; the networks are built for them.")
@click.option("--image-size", type=int, default=None, callback=_positive,
              help="Resize every image to this height and width (default: "
                   "the images' own size, one for all).")
@click.option("--channels", type=click.Choice(["1", "3"]), default=None,
              help="Convert the images to grayscale (1) or RGB (3) (default: "
                   "as they are).")
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
              help="For the latent kinds (ldm, cfg, rf-latent and their "
                   "variants): a trained VAE (.keras path or shipped name); "
                   "without it, one is trained first.")
@click.option("--from", "flow", default=None,
              help="For the reflow kinds and distill: the trained flow "
                   "(.keras path or shipped name) whose pairs the new flow "
                   "learns (reflow: Flow-1; distill: best Flow-2).")
@click.option("--pairs", "num_pairs", type=int, default=None, callback=_positive,
              help="For the reflow kinds and distill: (noise, image) pairs "
                   "to draw from --from (default: the recipe's).")
@click.option("--pair-steps", type=int, default=None, callback=_positive,
              help="For the reflow kinds and distill: --pair-sampler steps "
                   "of --from per pair (default: the recipe's).")
@click.option("--pair-sampler", type=click.Choice(["euler", "heun"]),
              default=None,
              help="For the reflow kinds and distill: the sampler that draws "
                   "the pairs; a Heun step costs two Euler steps (default: "
                   "the recipe's).")
@click.option("--eval-every", type=int, default=None, callback=_positive,
              help="Every N optimizer steps, sample --eval-images images and "
                   "log their FID (OUT/fid.csv, and the latest in log.csv); "
                   "diffusion and flow kinds.")
@click.option("--eval-images", type=int, default=256, show_default=True,
              callback=_positive, help="Images per FID evaluation (>= 2).")
@click.option("--evaluator", default=None, help=EVALUATOR_HELP)
@click.option("--overwrite", is_flag=True,
              help="Start over: discard an earlier run in --out (its backup, "
                   "log and finished model). Without it, a rerun resumes, or "
                   "continues a finished run that had fewer steps.")
@click.option("--distribute", is_flag=True,
              help="Train data-parallel on every device (JAX: and every host "
                   "given by KERAS_DISTRIBUTION_*); --batch-size is then the "
                   "global batch (see docs/distributed.md).")
@_computes
def train(kind, data, image_size, channels, epochs, max_steps, batch_size,
          learning_rate, out_dir, seed, vae, flow, num_pairs, pair_steps,
          pair_sampler, eval_every, eval_images, evaluator, overwrite, distribute):
    """Train a model of KIND on images (MNIST by default); rerun the same
    command to resume.

    The networks are built for the images of --data: their size, channels
    and, for the class-conditional kinds (the cfg and classifier kinds),
    their classes.

    A rerun after a crash, Ctrl-C or kill resumes from the last backup
    (every 10 steps); a rerun of a finished run says it is complete, or
    with a larger --max-steps trains it on; --overwrite starts over. One
    `kd train` at a time may use an --out directory.

    KIND `evaluator` trains the classifier of the --data images (MNIST
    digits by default) that `kd evaluate` uses
    (in a few minutes; it does not resume). KIND `reflow` trains Flow-2 on
    pairs drawn from the flow given by --from, into OUT/pairs.npz and
    OUT/reflow.keras (see docs/rectified_flow.md); KIND `distill` a
    one-step student of the flow given by --from (best a Flow-2), into
    OUT/distill.keras. KIND `classifier` trains
    the noisy-image classifier of classifier guidance (`kd sample
    --classifier`; see docs/classifier_guidance.md).
    """
    from keras_diffusion.app.train import train as train_model
    from keras_diffusion.app.train import train_reflow

    pair_kind = kind in PAIR_KINDS
    if pair_kind and flow is None:
        raise KDError(f"`kd train {kind}` needs --from FLOW (a trained flow).")
    if distribute and (pair_kind or kind == "evaluator"):
        raise KDError(f"--distribute does not apply to `kd train {kind}`; it "
                      "trains the diffusion, flow and VAE kinds.")
    pairs_only = {"--from": flow, "--pairs": num_pairs, "--pair-steps": pair_steps,
                  "--pair-sampler": pair_sampler}
    other_only = {"--data": data, "--vae": vae, "--eval-every": eval_every,
                  "--evaluator": evaluator, "--image-size": image_size,
                  "--channels": channels}
    given = _given(other_only if pair_kind else pairs_only)
    if given:
        raise KDError(
            f"{given} not used by `kd train {kind}`, which trains on pairs "
            "drawn from --from." if pair_kind else
            f"{given} only for `kd train reflow` and `kd train distill`, not "
            f"for {kind!r}."
        )
    # `train` and `train_reflow` say what they did (resumed, saved or
    # found the run complete).
    if pair_kind:
        _run(train_reflow, flow, num_pairs=num_pairs, epochs=epochs,
             max_steps=max_steps, batch_size=batch_size, out_dir=out_dir,
             seed=seed, learning_rate=learning_rate, pair_steps=pair_steps,
             pair_sampler=pair_sampler, overwrite=overwrite, kind=kind)
        return

    if kind == "evaluator":
        from keras_diffusion.app.train_evaluator import train_evaluator

        given = _given({"--max-steps": max_steps, "--eval-every": eval_every,
                        "--evaluator": evaluator, "--overwrite": overwrite or None})
        if given:
            raise KDError(f"{given} not used by `kd train evaluator`, which "
                          "trains for --epochs and replaces its model.")
        path = _run(train_evaluator, data=data, epochs=epochs,
                    batch_size=batch_size, out_dir=out_dir, seed=seed,
                    learning_rate=learning_rate, image_size=image_size,
                    channels=None if channels is None else int(channels))
        click.echo(f"Saved {path}")
        return
    _run(train_model, kind, data=data, epochs=epochs, max_steps=max_steps,
         batch_size=batch_size, out_dir=out_dir, seed=seed,
         learning_rate=learning_rate, vae=vae,
         distribute=True if distribute else None, overwrite=overwrite,
         eval_every=eval_every, eval_images=eval_images, evaluator=evaluator,
         image_size=image_size, channels=None if channels is None else int(channels))


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
              help="Number of images, exactly (default 16; 8 per class for a "
                   "class-conditional model without --class, one row per "
                   "class when the count divides evenly).")
@click.option("--class", "label", type=int, default=None,
              help="Class to generate (class-conditional models, or with "
                   "--classifier); without it, every class in turn.")
@click.option("--guidance", type=float, default=None,
              help="Classifier-free guidance weight, 0 to 20 (default 4; 0 is "
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
@_computes
def sample(model, sampler, steps, eta, num, label, guidance, seed, out, animate,
           classifier, classifier_scale):
    """Sample images from a trained model."""
    from keras_diffusion.app.sample import sample as sample_images

    if animate is not None and not animate.lower().endswith(".gif"):
        raise KDError(f"--animate {animate!r} must end in .gif.")
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
              help="The real images to compare with, any --data of `kd train` "
                   "(default: the features saved with the evaluator; the "
                   "shipped one holds 10,000 MNIST train and test digits).")
@click.option("--evaluator", default=None, help=EVALUATOR_HELP)
@click.option("--class", "label", type=int, default=None,
              help="Class-conditional models (or with --classifier): sample "
                   "only this class (default: every class in turn).")
@click.option("--guidance", type=float, default=None,
              help="Class-conditional models: guidance weight, 0 to 20 (default 4).")
@click.option("--classifier", default=None, help=CLASSIFIER_HELP)
@click.option("--classifier-scale", type=float, default=None,
              help=CLASSIFIER_SCALE_HELP)
@click.option("--json", "as_json", is_flag=True,
              help="Print the results as one JSON object.")
@_computes
def evaluate(model, samples, sampler, steps, num, seed, data, evaluator, label,
             guidance, classifier, classifier_scale, as_json):
    """Score samples with an evaluator (see docs/evaluation.md).

    Samples --num images from --model, or reads --samples, then prints the
    FID against as many real test images (in the evaluator's feature space),
    the floor (the FID of as many real training images), the confident rate
    and, when the file has labels, the class accuracy. The judge is the
    shipped MNIST evaluator, or --evaluator for other images.
    """
    import json

    from keras_diffusion.app.evaluate import evaluate as evaluate_samples

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
    result = _run(evaluate_samples, model=model, samples=samples, sampler=sampler,
                  num_steps=steps, num_images=num, seed=seed, data=data,
                  progress=not as_json, label=label, guidance=guidance,
                  classifier=classifier, classifier_scale=classifier_scale,
                  evaluator=evaluator)
    if as_json:
        click.echo(json.dumps(result))
        return
    rows = [
        ("samples", f"{result['num']}"),
        ("FID", f"{result['fid']:.2f}  (vs {result['num']} test images of "
                f"{result['reference']})"),
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
@click.option("--model", default="cfg", show_default=True,
              help="Shipped model name (see `kd info`), .keras path, preset "
                   "directory, or hf:// or kaggle:// handle.")
@click.option("--format", "export_format",
              type=click.Choice(("onnx", "tf_saved_model", "litert")),
              default="onnx", show_default=True,
              help="onnx (any backend), tf_saved_model (tensorflow, jax) or "
                   "litert (tensorflow).")
@click.option("--out", "out_dir", type=click.Path(), required=True,
              help="Directory to write (an export there is replaced).")
@click.option("--sampler", type=click.Choice(SAMPLERS), default=None,
              help="dpm or ddim for a diffusion model, euler or heun for a "
                   "flow (default: dpm, or euler for a flow; an exported step "
                   "takes no noise, so not ddpm or dpm-sde).")
@click.option("--steps", type=int, default=None, callback=_positive,
              help="Sampling steps (default: 10 for dpm, 50 for ddim, 16 for "
                   "euler, 8 for heun).")
@click.option("--batch-size", type=int, default=16, show_default=True,
              callback=_positive, help="The exported graphs' batch size.")
@_computes
def export(model, export_format, out_dir, sampler, steps, batch_size):
    """Export a model to sample without Keras (see docs/sharing.md).

    Writes OUT/denoiser.onnx (the network at one sampling step, with the
    class and guidance inputs of a class-conditional model), OUT/decoder.onnx
    for a latent model (its VAE decoder) and OUT/sampler.json (the sampler's
    steps and coefficients). `python examples/sample_onnx.py OUT` samples
    from an ONNX export with NumPy and onnxruntime only.
    """
    from keras_diffusion.app.export import ExportError
    from keras_diffusion.app.export import export_model

    try:
        _run(export_model, model, out_dir, format=export_format, sampler=sampler,
             num_steps=steps, batch_size=batch_size)
    except ExportError as error:
        raise click.ClickException(_one_line(error)) from None
    click.echo(f"Wrote {out_dir}")


@cli.command()
@_computes
def info():
    """Show the version, the active backend and the shipped models."""
    import keras

    from keras_diffusion import __version__
    from keras_diffusion.presets import PRETRAINED
    from keras_diffusion.presets import WEIGHTS_DIR
    from keras_diffusion.presets import available_models
    from keras_diffusion.presets import shipped_preset_dir
    from keras_diffusion.presets import read_metadata

    backend = keras.backend.backend()
    source = ("from KERAS_BACKEND" if os.environ.get("KERAS_BACKEND") else
              f"the default; set KERAS_BACKEND to {', '.join(BACKENDS)}")
    backend_version, devices = _backend_details(backend)
    click.echo(f"keras_diffusion {__version__}")
    click.echo(f"keras {keras.__version__}, backend {backend} ({source})")
    click.echo(f"{backend} {backend_version}, devices: {devices}")
    click.echo(f"python {sys.version.split()[0]}")
    click.echo(f"shipped presets (in {WEIGHTS_DIR}):")
    present = set(available_models())
    width = max(len(name) for name in PRETRAINED)
    for name, (_, description) in PRETRAINED.items():
        if name not in present:
            click.echo(f"  {name:<{width}} {'missing':>9}  {description}")
            continue
        directory = shipped_preset_dir(name)
        size = sum(os.path.getsize(os.path.join(directory, filename))
                   for filename in os.listdir(directory)) / 2**20
        click.echo(f"  {name:<{width}} {size:>5.1f} MiB  {description}")
        metadata = read_metadata(directory)
        details = [f"{metadata['parameter_count']:,} parameters"
                   if "parameter_count" in metadata else None,
                   f"saved {metadata['date_saved']}" if "date_saved" in metadata
                   else None,
                   f"keras {metadata['keras_version']}"
                   if "keras_version" in metadata else None]
        details = ", ".join(detail for detail in details if detail)
        if details:
            click.echo(f"  {'':<{width}} {'':>9}  {details}")


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
