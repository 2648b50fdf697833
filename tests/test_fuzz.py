"""Property-based fuzzing (hypothesis) of the data loader and `kd sample`.

- `load_mnist` on malformed IDX directories and `.npz` files returns valid
  arrays or raises `DataError`, never another exception, and a header that
  declares a huge shape allocates nothing.
- `kd sample` with random flag values exits 0 (and writes one good file) or
  2 (one error line, no file), never with a traceback.
"""

import contextlib
import gzip
import os
import struct
import tempfile
import tracemalloc

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck
from hypothesis import event
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from conftest import randomize
from keras_diffusion.data import DataError
from keras_diffusion.data import load_mnist
from keras_diffusion.data import read_idx
from keras_diffusion_cli.main import cli

FUZZ = settings(max_examples=40, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow])
IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4",
              0x0E: ">f8"}


def _check_loaded(path, record=True):
    """`load_mnist(path)` gives valid arrays or raises DataError."""
    try:
        images, labels = load_mnist(path, "train")
    except DataError as error:
        assert str(error)
        if record:
            event("DataError")
        return False
    if record:
        event("loaded")
    assert images.dtype == np.uint8 and images.ndim == 3
    assert images.shape[1:] == (28, 28) and len(images) >= 1
    assert labels.dtype == np.int64 and labels.shape == (len(images),)
    assert labels.min() >= 0 and labels.max() <= 9
    return True


# --- IDX -------------------------------------------------------------------


def _idx_bytes(code, shape, payload):
    return (struct.pack(">HBB", 0, code, len(shape))
            + struct.pack(f">{len(shape)}I", *shape) + payload)


@st.composite
def idx_file(draw, valid_shape, valid_values):
    """A valid IDX file (bytes) put through zero to three mutations."""
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    data = _idx_bytes(0x08, valid_shape,
                      rng.integers(0, valid_values, valid_shape, "uint8").tobytes())
    for _ in range(draw(st.integers(0, 3))):
        mutation = draw(st.sampled_from([
            "truncate", "pad", "flip", "magic", "dtype", "ndim", "dims", "huge",
            "random"]))
        if mutation == "truncate":
            data = data[:draw(st.integers(0, max(0, len(data) - 1)))]
        elif mutation == "pad":
            data += draw(st.binary(min_size=1, max_size=16))
        elif mutation == "flip" and data:
            index = draw(st.integers(0, len(data) - 1))
            data = data[:index] + bytes([data[index] ^ 0xFF]) + data[index + 1:]
        elif mutation == "magic" and len(data) >= 2:
            data = draw(st.binary(min_size=2, max_size=2)) + data[2:]
        elif mutation == "dtype" and len(data) >= 4:
            data = data[:2] + bytes([draw(st.sampled_from(
                list(IDX_DTYPES) + [0x00, 0x0A, 0xFF]))]) + data[3:]
        elif mutation == "ndim" and len(data) >= 4:
            data = data[:3] + bytes([draw(st.integers(0, 255))]) + data[4:]
        elif mutation in ("dims", "huge") and len(data) >= 4:
            ndim = data[3]
            dims = draw(st.lists(
                st.integers(0, 40) if mutation == "dims"
                else st.sampled_from([28, 2**16, 2**31, 2**32 - 1]),
                min_size=ndim, max_size=ndim))
            data = data[:4] + struct.pack(f">{ndim}I", *dims) + data[4 + 4 * ndim:]
        elif mutation == "random":
            data = draw(st.binary(max_size=64))
    return data


@st.composite
def idx_directory(draw):
    count = draw(st.integers(1, 4))
    images = draw(idx_file((count, 28, 28), 256))
    labels = draw(idx_file((count,), 10))
    compress = draw(st.booleans())
    corrupt_gzip = compress and draw(st.booleans()) and draw(st.booleans())
    return images, labels, compress, corrupt_gzip


@FUZZ
@given(idx_directory())
def test_load_mnist_on_malformed_idx(example):
    images, labels, compress, corrupt_gzip = example
    with tempfile.TemporaryDirectory() as directory:
        for stem, data in (("train-images-idx3-ubyte", images),
                           ("train-labels-idx1-ubyte", labels)):
            if compress:
                data = gzip.compress(data, mtime=0)
                if corrupt_gzip:  # damage the deflate stream or the trailer
                    index = len(data) // 2
                    data = data[:index] + bytes([data[index] ^ 0x5A]) + data[index + 1:]
                stem += ".gz"
            with open(os.path.join(directory, stem), "wb") as f:
                f.write(data)
        _check_loaded(directory)


def test_a_valid_idx_directory_loads(tmp_path):
    # The unmutated strategy base: the fuzz above does reach the happy path.
    images = np.arange(2 * 28 * 28, dtype="uint32").astype("uint8").reshape(2, 28, 28)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(
        _idx_bytes(0x08, images.shape, images.tobytes()))
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(
        _idx_bytes(0x08, (2,), bytes([3, 9])))
    assert _check_loaded(str(tmp_path), record=False)


@pytest.mark.parametrize("name, data", [
    # 2**96 bytes declared (the product overflowed int64 before), 100 held.
    ("huge-idx3-ubyte", _idx_bytes(0x08, (2**32 - 1,) * 3, bytes(100))),
    # 2**64 declared: wrapped to 0 in int64 and matched an empty payload.
    ("wrap-idx3-ubyte", _idx_bytes(0x08, (2**16,) * 4, b"")),
    # 1 GiB declared, 100 bytes held.
    ("gib-idx1-ubyte", _idx_bytes(0x08, (2**30,), bytes(100))),
], ids=["huge", "wraps-int64", "1GiB"])
def test_declared_shape_allocates_nothing(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    with _peak_memory() as peak:
        with pytest.raises(DataError, match="truncated or padded"):
            read_idx(str(path))
    assert peak["bytes"] < 8 << 20, peak


def test_gzip_bomb_reads_only_the_declared_size(tmp_path):
    # 64 MiB of zeros after a header that declares one 28x28 image.
    path = tmp_path / "bomb-idx3-ubyte.gz"
    with gzip.open(path, "wb", compresslevel=1) as f:
        f.write(_idx_bytes(0x08, (1, 28, 28), b""))
        for _ in range(64):
            f.write(bytes(1 << 20))
    with _peak_memory() as peak:
        with pytest.raises(DataError, match="padded"):
            read_idx(str(path))
    assert peak["bytes"] < 8 << 20, peak


@contextlib.contextmanager
def _peak_memory():
    """Peak bytes allocated by Python (and NumPy) inside the block."""
    result = {}
    tracemalloc.start()
    try:
        yield result
    finally:
        result["bytes"] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()


# --- NPZ -------------------------------------------------------------------

DTYPES = ["uint8", "int64", "int8", "float32", "float64", "bool", "complex64",
          "<U1", "datetime64[s]"]


@st.composite
def array(draw, valid_shape, high):
    shape = draw(st.one_of(
        st.just(valid_shape), st.just(valid_shape),
        st.lists(st.sampled_from([0, 1, 2, 3, 28, 32]), max_size=4).map(tuple)))
    dtype = draw(st.sampled_from(DTYPES))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    values = rng.integers(0, high, shape)
    if draw(st.booleans()) and draw(st.booleans()):
        values = values + draw(st.sampled_from([-1, 10, 300, 0.5]))
    values = np.asarray(values)
    if dtype == "<U1":
        return values.astype("<U1")
    if dtype.startswith("datetime"):
        return values.astype("int64").astype(dtype)
    with np.errstate(all="ignore"):
        result = values.astype(dtype)
    if dtype.startswith("float") and result.size and draw(st.booleans()):
        result.flat[0] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    return result


@st.composite
def npz_bytes(draw):
    count = draw(st.integers(1, 3))
    arrays = {"x_train": draw(array((count, 28, 28), 256)),
              "y_train": draw(array((count,), 10))}
    for key in draw(st.lists(st.sampled_from(sorted(arrays)), max_size=1)):
        del arrays[key]
    with tempfile.TemporaryFile() as f:
        np.savez(f, **arrays)
        f.seek(0)
        data = f.read()
    damage = draw(st.sampled_from(["none"] * 4 + ["truncate", "flip", "random"]))
    if damage == "truncate":
        data = data[:draw(st.integers(0, len(data) - 1))]
    elif damage == "flip":
        index = draw(st.integers(0, len(data) - 1))
        data = data[:index] + bytes([data[index] ^ 0xFF]) + data[index + 1:]
    elif damage == "random":
        data = draw(st.binary(max_size=200))
    return data


@FUZZ
@given(npz_bytes())
def test_load_mnist_on_malformed_npz(data):
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "mnist.npz")
        with open(path, "wb") as f:
            f.write(data)
        _check_loaded(path)


# --- `kd sample` flags -----------------------------------------------------


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A tiny unconditional and a tiny class-conditional model, saved, and
    `kd sample` patched to load each file once (so compiled sampling steps
    are reused across examples; loading itself is tested elsewhere)."""
    import keras

    import keras_diffusion  # noqa: F401
    from keras_diffusion.app import sample as sampling
    from keras_diffusion.models import DDPM
    from keras_diffusion.networks import UNet

    directory = tmp_path_factory.mktemp("fuzz-models")
    paths = {}
    for name, extra in (("uncond", {}),
                        ("cond", {"num_classes": 10, "class_input_channel": True})):
        keras.utils.set_random_seed(0)
        model = DDPM(UNet(widths=(8, 16), attention_levels=(1,), embedding_dim=32,
                          num_heads=1, **extra))
        randomize(model)
        paths[name] = str(directory / f"{name}.keras")
        model.save(paths[name])

    real_load, cache = sampling.load_model, {}

    def load_once(name_or_path, **kwargs):
        if name_or_path not in cache:
            cache[name_or_path] = real_load(name_or_path, **kwargs)
        return cache[name_or_path]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sampling, "load_model", load_once)
        yield paths


JUNK = st.text(st.characters(codec="ascii"), max_size=4)
SAFE_STEM = st.text("abcXYZ019_-.", min_size=1, max_size=12)


def _as_text(values):
    return values.map(str)


def _flag_values(model):
    """flag -> (accepted values, or None to omit; values that may be refused).

    Small on the accepted side, so that accepted calls run fast.
    """
    conditional = model == "cond"
    return {
        "--steps": (_as_text(st.integers(1, 6)),
                    _as_text(st.integers(-5, 0) | st.just(1001)) | JUNK),
        "--num": (_as_text(st.integers(1, 3)),
                  _as_text(st.integers(-3, 0)) | JUNK),
        "--class": (st.none() | (_as_text(st.integers(0, 9)) if conditional
                                 else st.none()),
                    _as_text(st.integers(-2, 11)) | JUNK),
        "--guidance": (st.none() | (_as_text(st.floats(0, 10)) if conditional
                                    else st.none()),
                       _as_text(st.floats(allow_nan=True, allow_infinity=True))
                       | JUNK),
        "--eta": (st.none() | _as_text(st.sampled_from([0.0, 0.5, 1.0])),
                  _as_text(st.floats(allow_nan=True, allow_infinity=True)) | JUNK),
        "--seed": (st.none() | _as_text(st.integers(0, 2**32 - 1)),
                   _as_text(st.integers(-3, -1) | st.sampled_from([2**32, 2**70]))
                   | JUNK),
        "--sampler": (st.none() | st.sampled_from(["ddim", "ddpm"]),
                      st.sampled_from(["DDIM", "euler", "heun", ""]) | JUNK),
        "--out": (st.builds(lambda stem, ext: stem + ext, SAFE_STEM,
                            st.sampled_from([".png", ".npz", ".NPZ", ".PNG"])),
                  st.sampled_from(["s.jpg", "s", ".png", "sub/s.png", "s.png/",
                                   "../s.png", "a" * 300 + ".npz"])
                  | st.builds(lambda stem, ext: stem + ext, st.text(max_size=12),
                              st.sampled_from([".png", ".npz", ".gif", ""]))),
    }


@st.composite
def sample_args(draw):
    """(model, flags, output name): every flag accepted, or one or two faulty."""
    model = draw(st.sampled_from(["uncond", "cond"]))
    values = _flag_values(model)
    count = draw(st.integers(0, 2))
    faulty = draw(st.sets(st.sampled_from(sorted(values)), min_size=count,
                          max_size=count))
    args, out_name = [], None
    for flag in sorted(values):
        accepted, refused = values[flag]
        value = draw(refused if flag in faulty else accepted)
        if flag == "--out":
            out_name = value
        elif value is not None:
            args += [flag, value]
    return model, args, out_name


@settings(max_examples=30, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(sample_args())
def test_kd_sample_flags_exit_0_or_2(models, example):
    model, args, out_name = example
    with tempfile.TemporaryDirectory() as directory:
        out = os.path.join(directory, out_name)
        result = CliRunner().invoke(
            cli, ["sample", "--model", models[model], "--out", out] + args)
        assert result.exit_code in (0, 2), (result.output, result.exception)
        event(f"exit {result.exit_code}")
        assert result.exception is None or isinstance(
            result.exception, SystemExit), repr(result.exception)
        assert "Traceback" not in result.output
        written = sorted(os.listdir(directory))
        if result.exit_code == 2:
            errors = [line for line in result.output.splitlines()
                      if line.startswith("Error: ")]
            assert len(errors) == 1, result.output
            assert written == [], written  # no output, no temporary file
            return
        assert written == [out_name], written
        if out_name.lower().endswith(".npz"):
            images = np.load(out)["images"]
            assert images.shape[1:] == (28, 28, 1) and len(images) >= 1
            assert np.all(np.isfinite(images))
            assert images.min() >= 0 and images.max() <= 1
        else:
            with open(out, "rb") as f:
                assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_fuzzed_flags_include_accepted_calls(models, tmp_path):
    # The strategy's valid corner works (so the fuzz is not all rejections).
    out = tmp_path / "s.npz"
    result = CliRunner().invoke(cli, [
        "sample", "--model", models["cond"], "--out", str(out), "--steps", "2",
        "--num", "2", "--class", "7", "--guidance", "0.5", "--sampler", "ddim",
        "--eta", "1.0",
        "--seed", str(2**32 - 1)])
    assert result.exit_code == 0, result.output
    assert np.load(out)["labels"].tolist() == [7, 7]
