"""Building a model to load weights into, without computing initial weights.

Under JAX, a random initializer runs a compiled XLA program, and XLA
compiles one per weight shape: building a shipped model from its config
compiles dozens of programs and takes most of the time `load_model` takes
(docs/performance.md#start-up), for values that loading then overwrites.

`build_for_loading(config)` therefore builds the model, under JAX, inside a
`keras.StatelessScope(initialize_variables=False)`: Keras then creates
every variable without a value, to be initialized later. Loading the
weights assigns most of them; `finish_loading()` gives the rest (seed
generator states, metric trackers: what a weights file does not hold)
their initial values, as Keras would have.

TensorFlow and PyTorch cannot assign to a variable that has no value yet
(and their initializers cost little), so there the model is built as
usual; so it is inside a `keras.distribution` (data-parallel training),
where only variables created with a value get the distribution's layout.

Example:
>>> model = build_for_loading(config)
>>> try:
...     model.load_weights("model.weights.h5")
... finally:
...     finish_loading()
"""

import keras


def build_for_loading(config):
    """The model that `config` (a serialized Keras object) describes, built
    to have its weights loaded (under JAX, its variables not yet
    initialized; call `finish_loading()` once they are loaded)."""
    if (keras.backend.backend() != "jax"
            or keras.distribution.distribution() is not None):
        # Inside a distribution (data-parallel training on several devices)
        # a variable created without a value and assigned later is left on
        # one device, not laid out as the distribution says; the model's
        # compiled train step then refuses the mix of devices.
        return keras.saving.deserialize_keras_object(config)
    try:
        with keras.StatelessScope(initialize_variables=False):
            return keras.saving.deserialize_keras_object(config)
    except Exception:
        finish_loading(discard=True)
        raise


def finish_loading(discard=False):
    """Initializes the variables that `build_for_loading` left without a
    value and loading did not assign (none, except under JAX).

    Keras keeps such variables in a list of its own (the one
    `StatelessScope` fills); this does what Keras' `initialize_all_variables`
    does, for the variables still without a value, and empties the list.
    Call it whether or not the loading succeeded.

    Args:
        discard: bool; `True` when the model will not be used (it was
            refused before its weights were loaded): the list is emptied
            without computing initial values.
    """
    # Keras internals, the only place this package uses them: Keras has no
    # public way to initialize some of a scope's variables and not others.
    from keras.src.backend.common import global_state

    pending = global_state.get_global_attribute("uninitialized_variables") or []
    if not discard:
        for variable in pending:
            if variable._value is None:
                variable._deferred_initialize()
    global_state.set_global_attribute("uninitialized_variables", [])
