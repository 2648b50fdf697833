import keras

from keras_diffusion.presets import PresetMixin


class TrainableModel(PresetMixin, keras.Model):
    """Base of this package's models: presets, and a `fit` that starts fast
    and can be called again.

    `fit` adds two things to Keras' own, both invisible to the training
    math:

    - It builds the optimizer's variables (moments, EMA) before the first
      step when the model is built. TensorFlow's trainer otherwise creates
      them while tracing the train step, which then has to be traced twice
      (TensorFlow's rule for functions that create variables; measured in
      docs/performance.md#start-up).
    - Under JAX, after an EMA `fit`, it gives every weight its own buffer:
      Keras' EMA finalize leaves each weight sharing its buffer with its
      average, and a second `fit` then fails ("donate the same buffer
      twice").

    A subclass defines `compute_loss` (and `call`, `get_config`), so that
    every backend's own `train_step` computes the gradients.
    """

    def fit(self, *args, **kwargs):
        self.build_optimizer()
        history = super().fit(*args, **kwargs)
        if keras.backend.backend() == "jax" and getattr(
            self.optimizer, "use_ema", False
        ):
            import jax.numpy as jnp

            for variable in self.trainable_variables:
                variable.assign(jnp.array(variable.value, copy=True))
        return history

    def build_optimizer(self):
        """Creates the optimizer's variables for the model's weights, if the
        model is compiled and built and the optimizer is not (Keras would
        otherwise create them at the first train step)."""
        optimizer = getattr(self, "optimizer", None)
        if optimizer is None or optimizer.built or not self.built:
            return
        if not all(layer.built for layer in self._flatten_layers()):
            return  # Keras builds the rest, then the optimizer, in `fit`
        optimizer.build(self.trainable_variables)
