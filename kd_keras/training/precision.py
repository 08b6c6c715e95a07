"""Mixed precision is a training choice: trained models are saved, measured and exported in float32."""

from __future__ import annotations

import keras


def is_float32(model: keras.Model) -> bool:
    """Whether every layer of `model` computes in float32."""
    return all(layer.dtype_policy.name == "float32" for layer in model._flatten_layers(include_self=False))


def as_float32(model: keras.Model) -> keras.Model:
    """The same model computing in float32, with the same (float32) weights.

    A model built under `mixed_float16` or `mixed_bfloat16` keeps float32
    variables but computes in 16 bits; the TFLite converter refuses its
    bfloat16 ops, and a device wants float32 (or its own quantisation) anyway.
    This rebuilds the architecture with float32 layers and copies the
    weights. A float32 model is returned as is.

    Reference:
        Micikevicius et al. Mixed Precision Training. ICLR 2018.
        https://arxiv.org/abs/1710.03740
    """
    if is_float32(model):
        return model

    def float32_layer(layer):
        config = layer.get_config()
        if "dtype" in config:
            config["dtype"] = "float32"
        return layer.__class__.from_config(config)

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32")
    try:
        copy = keras.models.clone_model(model, clone_function=float32_layer)
    finally:
        keras.config.set_dtype_policy(previous)
    copy.set_weights(model.get_weights())
    return copy
