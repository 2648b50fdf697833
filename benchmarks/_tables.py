"""What the benchmark tables share: a model with its evaluator, floor and
labels, and a Markdown table header."""


def model_with_floor(name, num, data, evaluator=None):
    """`(model, evaluator, floor, labels)`: a shipped name or path loaded,
    the evaluator (`None`: the shipped MNIST one; else a name or path), its
    real-vs-real floor at `num` images, and for a class-conditional model
    the classes in turn (else `None`)."""
    import keras_diffusion
    from keras_diffusion.guidance import cycled_labels
    from keras_diffusion.metrics import as_evaluator

    model = keras_diffusion.load_model(name)
    evaluator = as_evaluator(evaluator)
    floor = evaluator.floor(num, data)
    labels = None
    if getattr(model, "conditional", False):
        labels = cycled_labels(model.num_classes, num)
    return model, evaluator, floor, labels


def print_header(header):
    """Prints a Markdown table's header row and its separator."""
    print(header)
    print("|" + " --- |" * (header.count("|") - 1))
