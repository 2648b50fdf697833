"""`kd`: a thin click layer; each command calls one library function."""

import os
import sys

import click

BACKENDS = ("tensorflow", "jax", "torch")
TRAIN_KINDS = ("ddpm",)
SAMPLERS = ("ddpm", "ddim")


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
        raise click.ClickException(_one_line(error)) from None


def _one_line(error):
    return " ".join(str(error).split())


def _positive(ctx, param, value):
    if value is not None and value < 1:
        raise click.BadParameter(f"must be >= 1, got {value}.")
    return value


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
@click.option("--seed", type=int, default=0, show_default=True)
def train(kind, data, epochs, max_steps, batch_size, learning_rate, out_dir, seed):
    """Train a model of KIND on MNIST; rerun the same command to resume."""
    from keras_diffusion.training import train as train_model

    path = _run(train_model, kind, data=data, epochs=epochs, max_steps=max_steps,
                batch_size=batch_size, out_dir=out_dir, seed=seed,
                learning_rate=learning_rate)
    click.echo(f"Saved {path}")


@cli.command()
@click.option("--model", default="ddpm", show_default=True,
              help="Shipped model name (see `kd info`) or .keras path.")
@click.option("--sampler", type=click.Choice(SAMPLERS), default="ddim",
              show_default=True)
@click.option("--steps", type=int, default=None, callback=_positive,
              help="Denoising steps (default: 1000 for ddpm, 50 for ddim).")
@click.option("--eta", type=float, default=0.0, show_default=True,
              help="DDIM noise scale (0: deterministic).")
@click.option("--num", type=int, default=16, show_default=True,
              callback=_positive, help="Number of images.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", type=click.Path(), default="samples.png",
              show_default=True, help=".png grid or .npz of images in [0, 1].")
def sample(model, sampler, steps, eta, num, seed, out):
    """Sample images from a trained model."""
    from keras_diffusion.sampling import sample as sample_images

    if eta < 0:
        raise KDError(f"--eta must be >= 0. Got {eta}")
    _run(sample_images, model=model, sampler=sampler, num_steps=steps,
         num_images=num, seed=seed, out=out, eta=eta)
    click.echo(f"Wrote {out}")


@cli.command()
def info():
    """Show the version, the active backend and the shipped models."""
    import keras

    from keras_diffusion import __version__
    from keras_diffusion.pretrained import PRETRAINED
    from keras_diffusion.pretrained import available_models

    click.echo(f"keras_diffusion {__version__}")
    click.echo(f"keras {keras.__version__}, backend {keras.backend.backend()}")
    click.echo(f"python {sys.version.split()[0]}")
    click.echo("shipped models:")
    present = set(available_models())
    for name, (_, description) in PRETRAINED.items():
        mark = "" if name in present else "  (missing)"
        click.echo(f"  {name:<14} {description}{mark}")


if __name__ == "__main__":
    cli()
