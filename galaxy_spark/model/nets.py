"""Keras networks built from a preset: presets/<name>.yaml (packaged in galaxy_spark/conf/presets/;
see galaxy_spark.config for the GALAXY_SPARK_CONF_DIR override) or a path to a YAML file.

Every network is a plain stack: [Normalization] → [input Dense] → hidden Dense (+Dropout) → output
Dense. That shape is deliberately simple: the ensemble evaluates it with NumPy from the weights
(galaxy_spark/model/ensemble.py), so scoring needs no TensorFlow.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from galaxy_spark.config import PRESETS, conf_names, find_conf, is_yaml_path
from galaxy_spark.errors import InputError
from galaxy_spark.model.heads import OPTIONAL_HEADS, REQUIRED_HEADS

KINDS = ("regression", "classifier", "pdf", "sed")
ACTIVATIONS = ("linear", "relu", "softmax", "tanh", "sigmoid", "elu")
OPTIMIZERS = ("adam", "rmsprop", "sgd")


def load_preset(name_or_path: str) -> dict:
    """Load and validate a preset: a packaged name ('default', 'paper'; presets/<name>.yaml from
    $GALAXY_SPARK_CONF_DIR or the package) or a path to a YAML file. Errors name the key.
    Defaults filled in: slope_correction {degree: 1}, regress_on 'all'; `_source` records the file."""
    path = Path(name_or_path) if is_yaml_path(name_or_path) else find_conf(PRESETS, str(name_or_path))
    if path is None or not path.is_file():
        raise InputError(f"preset {name_or_path!r} not found (known presets: {', '.join(conf_names(PRESETS))})")
    preset = yaml.safe_load(path.read_text()) or {}
    src = path.name

    def need(d, key, where):
        if not isinstance(d, dict) or key not in d:
            raise InputError(f"{src}: {where}{key}: missing required key")
        return d[key]

    need(preset, "name", "")
    if need(preset, "features", "") not in ("thesis", "default"):
        raise InputError(f"{src}: features: expected 'thesis' or 'default'")
    split = need(preset, "split", "")
    for k in ("train", "validation"):
        v = need(split, k, "split.")
        if not isinstance(v, (int, float)) or not 0 < v <= 1:
            raise InputError(f"{src}: split.{k}: expected a fraction in (0, 1], got {v!r}")
    nets = need(preset, "networks", "")
    for t in REQUIRED_HEADS + tuple(t for t in OPTIONAL_HEADS if isinstance(nets, dict) and t in nets):
        cfg = need(nets, t, "networks.")
        where = f"networks.{t}."
        if need(cfg, "kind", where) not in KINDS:
            raise InputError(f"{src}: {where}kind: expected one of {KINDS}")
        for i, h in enumerate(need(cfg, "hidden", where)):
            if not isinstance(h.get("units"), int) or h["units"] <= 0:
                raise InputError(f"{src}: {where}hidden[{i}].units: expected a positive integer")
            if h.get("activation", "linear") not in ACTIVATIONS:
                raise InputError(f"{src}: {where}hidden[{i}].activation: expected one of {ACTIVATIONS}")
        if need(cfg, "optimizer", where).get("name") not in OPTIMIZERS:
            raise InputError(f"{src}: {where}optimizer.name: expected one of {OPTIMIZERS}")
        for k in ("epochs", "batch_size"):
            if not isinstance(need(cfg, k, where), int) or cfg[k] <= 0:
                raise InputError(f"{src}: {where}{k}: expected a positive integer")
        if cfg["kind"] == "pdf":
            zb = need(cfg, "z_bins", where)
            for k in ("min", "max", "count"):
                need(zb, k, f"{where}z_bins.")
        else:
            need(cfg, "output", where)
            need(cfg, "loss", where)
        if (cfg["kind"] == "sed") != (t == "sed"):
            raise InputError(f"{src}: {where}kind: the sed network, and only it, has kind 'sed'")
    preset.setdefault("slope_correction", {"degree": 1})
    preset.setdefault("regress_on", "all")
    preset["_source"] = str(path)
    return preset


def z_bin_centres(cfg: dict) -> np.ndarray:
    """Centres of the p(z) bins of a pdf network (`z_bins`: min, max, count; redshift units)."""
    zb = cfg["z_bins"]
    edges = np.linspace(zb["min"], zb["max"], zb["count"] + 1)
    return 0.5 * (edges[1:] + edges[:-1])


def build_network(cfg: dict, n_inputs: int, norm_mean: np.ndarray | None = None,
                  norm_var: np.ndarray | None = None, name: str = "net"):
    """A compiled Keras model for one network of a preset."""
    import keras
    from keras import layers

    reg = keras.regularizers.l2(cfg["l2"]) if cfg.get("l2") else None
    inputs = keras.Input(shape=(n_inputs,), name="features")
    x = inputs
    if norm_mean is not None:
        x = layers.Normalization(mean=norm_mean, variance=np.maximum(norm_var, 1e-6), name="normalise")(x)
    if cfg.get("input_layer"):
        x = layers.Dense(n_inputs, activation=cfg["input_layer"].get("activation", "linear"),
                         kernel_regularizer=reg, name="input_dense")(x)
    for i, h in enumerate(cfg["hidden"]):
        x = layers.Dense(h["units"], activation=h.get("activation", "linear"), kernel_regularizer=reg,
                         name=f"hidden_{i + 1}")(x)
        if h.get("dropout"):
            x = layers.Dropout(h["dropout"], name=f"dropout_{i + 1}")(x)
    if cfg["kind"] == "pdf":
        out = layers.Dense(cfg["z_bins"]["count"], activation="softmax", name="p_z")(x)
    else:
        o = cfg["output"]
        out = layers.Dense(o["units"], activation=o.get("activation", "linear"), name="output")(x)
    model = keras.Model(inputs, out, name=name)
    compile_network(model, cfg, network_loss(cfg))
    return model


def network_loss(cfg: dict):
    """The Keras loss of a network: categorical cross-entropy over the p(z) bins for a pdf
    network, else the preset's `loss` ('mse', 'huber' (delta 1) or any Keras loss name; 'mse'
    when the preset names none)."""
    import keras

    if cfg["kind"] == "pdf":
        return "categorical_crossentropy"
    loss = cfg.get("loss", "mse")
    return {"mse": "mean_squared_error", "huber": keras.losses.Huber(delta=1.0)}.get(loss, loss)


def dense_layers(cfg: dict, n_inputs: int) -> list[tuple[int, str, float | None]]:
    """The Dense layers `build_network` makes for `cfg`, in order: (units, activation, dropout rate
    after the layer or None). `n_inputs` is the feature count (the optional input layer's width)."""
    out = ([(n_inputs, cfg["input_layer"].get("activation", "linear"), None)] if cfg.get("input_layer") else [])
    out += [(h["units"], h.get("activation", "linear"), h.get("dropout")) for h in cfg["hidden"]]
    if cfg["kind"] == "pdf":
        out.append((cfg["z_bins"]["count"], "softmax", None))
    else:
        out.append((cfg["output"]["units"], cfg["output"].get("activation", "linear"), None))
    return out


def compile_network(model, cfg: dict, loss, lr_factor: float = 1.0) -> None:
    """(Re)compile with the preset's optimizer; `lr_factor` scales its learning rate (fine-tuning
    a pretrained network on a small label set uses a fraction of it). Optimizers without an
    explicit learning rate in the preset use Keras' default, scaled alike."""
    import keras

    opt_cfg = cfg["optimizer"]
    opt_cls = {"adam": keras.optimizers.Adam, "rmsprop": keras.optimizers.RMSprop,
               "sgd": keras.optimizers.SGD}[opt_cfg["name"]]
    lr = opt_cfg.get("learning_rate")
    if lr is None and lr_factor != 1.0:
        lr = float(opt_cls().learning_rate.numpy() if hasattr(opt_cls().learning_rate, "numpy")
                   else opt_cls().learning_rate)
    opt = opt_cls(**({"learning_rate": lr * lr_factor} if lr is not None else {}))
    model.compile(optimizer=opt, loss=loss)


def extract_layers(model) -> tuple[dict | None, list[dict]]:
    """(normalisation {mean, std} or None, [{W, b, activation}, …]) for NumPy evaluation."""
    from keras import layers

    norm, dense = None, []
    for layer in model.layers:
        if isinstance(layer, layers.Normalization):
            mean = np.asarray(layer.mean, dtype=np.float64).reshape(-1)
            var = np.asarray(layer.variance, dtype=np.float64).reshape(-1)
            norm = {"mean": mean, "std": np.maximum(np.sqrt(var), 1e-7)}  # Keras' epsilon floor
        elif isinstance(layer, layers.Dense):
            w, b = layer.get_weights()
            act = layer.get_config()["activation"]
            if act not in ACTIVATIONS:
                raise ValueError(f"layer {layer.name}: activation {act!r} has no NumPy evaluator")
            dense.append({"W": w, "b": b, "activation": act})
        elif isinstance(layer, (layers.InputLayer, layers.Dropout)):
            continue
        else:
            raise ValueError(f"layer {layer.name} ({type(layer).__name__}) has no NumPy evaluator")
    return norm, dense
