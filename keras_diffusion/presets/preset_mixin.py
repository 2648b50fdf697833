"""`PresetMixin`: `from_preset` and `save_to_preset` on a model class."""

from keras_diffusion.presets.load_model import load_model
from keras_diffusion.presets.preset_dir import save_to_preset


class PresetMixin:
    """Adds `from_preset` and `save_to_preset` to a model class.

    Mixed in before `keras.Model` by the package's model classes
    (`GenerativeModel`, `VAE`, `NoisyClassifier`, `MNISTClassifier`).
    """
    @classmethod
    def from_preset(cls, preset):
        """Loads a model of this class (or a subclass) from a preset.

        Args:
            preset: a shipped name (see `kd info`), a preset directory, an
                `hf://` or `kaggle://` handle, or a `.keras` file.

        Returns:
            The model; `ModelFileError` if it is not a `cls`.

        Example:
        >>> model = DDPM.from_preset("cfg")          # a LatentDiffusion
        >>> vae = VAE.from_preset("hf://someone/kd-vae")
        """

        return load_model(preset, expected_type=cls)

    def save_to_preset(self, preset_dir):
        """Saves this model as a preset directory; see `save_to_preset`.

        Example:
        >>> model.save_to_preset("my_model")
        >>> type(model).from_preset("my_model")
        """
        return save_to_preset(self, preset_dir)
