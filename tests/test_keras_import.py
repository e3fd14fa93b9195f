"""``from_keras``: a Keras 3 LSTM layer, Bidirectional layer, model or ``.keras`` file imported into fastlstm returns
what Keras returns for the same call (outputs and states, every option, masks), reading files without keras; what
cannot be imported exactly is refused with a message naming the layer and the option.

Tolerance: Keras (torch backend, float32) and fastlstm evaluate the same float32 equations in different summation
orders; on these small problems they agree to a few float32 roundings, far inside the suite's 1e-5 cap."""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "torch")  # before keras is imported: this suite runs Keras on torch

import subprocess
import sys
import textwrap
import zipfile

import keras
import numpy as np
import pytest

import fastlstm
from fastlstm.interop.keras import KerasLSTM, from_keras
from fastlstm.testing import MAX_TOLERANCE, max_abs_difference

# Weights are redrawn at this scale (biases included, so the bias mapping is tested), small enough that relu and
# linear activations stay near 1 over 9 steps.
WEIGHT_SCALE = 0.3


def _randomize(keras_object, rng):
    """Replace every weight with random values (Keras's initial biases are mostly zeros, which would hide bias
    mistakes)."""
    for variable in keras_object.weights:
        variable.assign(WEIGHT_SCALE * rng.standard_normal(tuple(variable.shape)).astype(np.float32))
    return keras_object


def _numpy(tensor):
    # Not np.asarray: converting a torch tensor that way warns under NumPy 2, and the suite turns warnings into errors.
    return tensor.detach().cpu().numpy()


def _as_list(result):
    return list(result) if isinstance(result, (list, tuple)) else [result]


def _keras_call(keras_object, x, **kwargs):
    return [_numpy(item) for item in _as_list(keras_object(x, **kwargs))]


def _assert_same(keras_results, ours):
    """Same structure (one array, or a list of the same length) and every array within the tolerance."""
    ours_list = _as_list(ours)
    if len(keras_results) == 1:
        assert isinstance(ours, np.ndarray), f"expected one array, got {type(ours).__name__}"
    else:
        assert isinstance(ours, list), f"expected a list of {len(keras_results)} arrays, got {type(ours).__name__}"
    assert len(ours_list) == len(keras_results)
    for index, (theirs, mine) in enumerate(zip(keras_results, ours_list)):
        assert mine.dtype == np.float32
        difference = max_abs_difference(mine, theirs)  # also checks the shapes
        assert difference <= MAX_TOLERANCE, f"result {index}: max |difference| {difference:.3g}"


def _states(rng, batch, units, count):
    return [rng.standard_normal((batch, units)).astype(np.float32) for _ in range(count)]


def _built_lstm(rng, input_size, units, **options):
    layer = keras.layers.LSTM(units, **options)
    layer.build((None, None, input_size))
    return _randomize(layer, rng)


def _built_bidirectional(rng, input_size, units, merge_mode="concat", **options):
    layer = keras.layers.Bidirectional(keras.layers.LSTM(units, **options), merge_mode=merge_mode)
    layer.build((None, None, input_size))
    return _randomize(layer, rng)


# ---- LSTM layers --------------------------------------------------------------------------------------------------

# (input_size, units, batch, steps, options)
LSTM_CASES = [
    (5, 7, 3, 9, {}),
    (5, 7, 3, 9, {"return_sequences": True}),
    (5, 7, 1, 9, {"return_state": True}),
    (5, 7, 3, 9, {"return_sequences": True, "return_state": True}),
    (5, 7, 3, 9, {"go_backwards": True}),
    (5, 7, 3, 9, {"go_backwards": True, "return_sequences": True, "return_state": True}),
    (5, 7, 3, 1, {"go_backwards": True, "return_sequences": True}),
    (13, 33, 3, 9, {"return_sequences": True, "use_bias": False}),
    (13, 33, 1, 1, {"return_state": True}),
    (5, 7, 3, 9, {"return_sequences": True, "recurrent_activation": "hard_sigmoid"}),
    (5, 7, 3, 9, {"return_sequences": True, "activation": "relu"}),
    (5, 7, 3, 9, {"return_sequences": True, "activation": "linear", "recurrent_activation": "hard_sigmoid"}),
    (5, 7, 3, 9, {"return_sequences": True, "activation": "softsign", "recurrent_activation": "softsign"}),
    (5, 7, 3, 9, {"return_sequences": True, "activation": "softplus", "recurrent_activation": "sigmoid"}),
    (5, 7, 3, 9, {"return_sequences": True, "activation": "elu", "go_backwards": True}),
    (5, 7, 3, 9, {"return_state": True, "activation": "leaky_relu", "recurrent_activation": "linear"}),
    (5, 7, 3, 9, {"return_sequences": True, "activation": None}),  # None is Keras's linear
]


def _case_id(case):
    input_size, units, batch, steps, options = case
    flags = "-".join(f"{key}={value}" for key, value in options.items()) or "default"
    return f"I{input_size}-H{units}-N{batch}-T{steps}-{flags}"


@pytest.mark.parametrize("with_state", [False, True], ids=["zeros", "initial_state"])
@pytest.mark.parametrize("case", LSTM_CASES, ids=_case_id)
def test_lstm_layer_returns_what_keras_returns(rng, case, with_state):
    input_size, units, batch, steps, options = case
    layer = _built_lstm(rng, input_size, units, **options)
    x = rng.standard_normal((batch, steps, input_size)).astype(np.float32)
    kwargs = {"initial_state": _states(rng, batch, units, 2)} if with_state else {}
    imported = from_keras(layer)
    _assert_same(_keras_call(layer, x, **kwargs), imported(x, **kwargs))


def test_imported_model_is_a_batch_first_fastlstm_model(rng):
    imported = from_keras(_built_lstm(rng, 5, 7, go_backwards=True, recurrent_activation="hard_sigmoid"))
    assert isinstance(imported, KerasLSTM)
    model = imported.model
    assert isinstance(model, fastlstm.LSTM)
    assert (model.input_size, model.hidden_size, model.batch_first, model.reverse) == (5, 7, True, True)
    assert model.activations[0] == ("hard_sigmoid", 1 / 6, 0.5)
    assert "go_backwards=True" in repr(imported)


# ---- Bidirectional ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("return_state", [False, True], ids=["outputs", "return_state"])
@pytest.mark.parametrize("return_sequences", [False, True], ids=["last", "sequences"])
@pytest.mark.parametrize("merge_mode", ["concat", "sum", "mul", "ave", None])
def test_bidirectional_returns_what_keras_returns(rng, merge_mode, return_sequences, return_state):
    layer = _built_bidirectional(rng, 5, 7, merge_mode, return_sequences=return_sequences, return_state=return_state)
    imported = from_keras(layer)
    assert imported.model.bidirectional
    x = rng.standard_normal((3, 9, 5)).astype(np.float32)
    _assert_same(_keras_call(layer, x), imported(x))
    initial_state = _states(rng, 3, 7, 4)
    _assert_same(_keras_call(layer, x, initial_state=initial_state), imported(x, initial_state=initial_state))


def test_bidirectional_with_its_own_backward_layer_and_options(rng):
    options = {"return_sequences": True, "activation": "relu", "recurrent_activation": "hard_sigmoid"}
    layer = keras.layers.Bidirectional(
        keras.layers.LSTM(33, **options), backward_layer=keras.layers.LSTM(33, go_backwards=True, **options)
    )
    layer.build((None, None, 13))
    _randomize(layer, rng)
    x = rng.standard_normal((1, 9, 13)).astype(np.float32)
    _assert_same(_keras_call(layer, x), from_keras(layer)(x))


# ---- masks ----------------------------------------------------------------------------------------------------------


def _right_padded(rng, lengths, steps, features, pad_value):
    """x whose row b holds lengths[b] random steps, then pad_value; and the matching mask."""
    x = rng.standard_normal((len(lengths), steps, features)).astype(np.float32)
    mask = np.arange(steps) < np.asarray(lengths)[:, None]
    x[~mask] = pad_value
    return x, mask


MASKED_LAYERS = [
    ("LSTM", {"return_sequences": True}),
    ("LSTM", {}),
    ("LSTM", {"return_sequences": True, "go_backwards": True, "return_state": True}),
    ("LSTM", {"go_backwards": True}),
    ("LSTM", {"return_sequences": True, "zero_output_for_mask": True}),
    ("LSTM", {"zero_output_for_mask": True, "go_backwards": True}),
    ("Bidirectional", {"return_sequences": True, "return_state": True}),
    ("Bidirectional", {"merge_mode": "ave"}),
]


def _masked_layer(kind, options):
    options = dict(options)
    if kind == "LSTM":
        return keras.layers.LSTM(7, **options)
    merge_mode = options.pop("merge_mode", "concat")
    return keras.layers.Bidirectional(keras.layers.LSTM(7, **options), merge_mode=merge_mode)


@pytest.mark.parametrize("mask_value", [0.0, -1.5])
@pytest.mark.parametrize("kind, options", MASKED_LAYERS, ids=lambda value: str(value))
def test_masking_layer_with_right_padded_rows(rng, kind, options, mask_value):
    model = keras.Sequential([keras.Input((None, 5)), keras.layers.Masking(mask_value), _masked_layer(kind, options)])
    _randomize(model, rng)
    x, _ = _right_padded(rng, [9, 4, 0, 1], 9, 5, mask_value)  # a full row, padded rows and an all-masked row
    imported = from_keras(model)
    assert imported.mask_value == mask_value
    _assert_same(_keras_call(model, x), imported(x))


@pytest.mark.parametrize("with_state", [False, True], ids=["zeros", "initial_state"])
@pytest.mark.parametrize("kind, options", MASKED_LAYERS, ids=lambda value: str(value))
def test_explicit_mask_with_holes(rng, kind, options, with_state):
    layer = _masked_layer(kind, options)
    layer.build((None, None, 5))
    _randomize(layer, rng)
    x = rng.standard_normal((5, 9, 5)).astype(np.float32)
    mask = np.array(
        [
            [1, 1, 0, 0, 1, 1, 1, 0, 1],  # holes in the middle, last step valid
            [0, 0, 1, 1, 1, 0, 1, 0, 0],  # masked at both ends
            [1, 1, 1, 1, 1, 0, 0, 0, 0],  # right padding
            [0, 0, 0, 0, 0, 0, 0, 0, 0],  # all masked
            [1, 1, 1, 1, 1, 1, 1, 1, 1],  # all valid
        ],
        dtype=bool,
    )
    kwargs = {"initial_state": _states(rng, 5, 7, 4 if kind == "Bidirectional" else 2)} if with_state else {}
    _assert_same(_keras_call(layer, x, mask=mask, **kwargs), from_keras(layer)(x, mask=mask, **kwargs))


def test_mask_of_integers_and_the_all_valid_mask(rng):
    layer = _built_lstm(rng, 5, 7, return_sequences=True)
    x = rng.standard_normal((2, 6, 5)).astype(np.float32)
    mask = np.array([[1, 0, 1, 1, 0, 1], [1, 1, 1, 1, 1, 1]], dtype=np.int64)
    _assert_same(_keras_call(layer, x, mask=mask.astype(bool)), from_keras(layer)(x, mask=mask))
    everything = np.ones((2, 6), bool)
    _assert_same(_keras_call(layer, x, mask=everything), from_keras(layer)(x, mask=everything))


# ---- models ---------------------------------------------------------------------------------------------------------


def _functional_masked_model(rng):
    inputs = keras.Input((None, 5))
    outputs = keras.layers.LSTM(7, return_sequences=True, return_state=True)(keras.layers.Masking(0.0)(inputs))
    return _randomize(keras.Model(inputs, outputs), rng)


def test_functional_model_with_masking(rng):
    model = _functional_masked_model(rng)
    x, _ = _right_padded(rng, [9, 3, 0], 9, 5, 0.0)
    _assert_same(_keras_call(model, x), from_keras(model)(x))


def test_functional_model_without_masking(rng):
    inputs = keras.Input((None, 13))
    model = keras.Model(inputs, keras.layers.Bidirectional(keras.layers.LSTM(33), merge_mode="sum")(inputs))
    _randomize(model, rng)
    x = rng.standard_normal((3, 9, 13)).astype(np.float32)
    _assert_same(_keras_call(model, x), from_keras(model)(x))


STACKS = [
    [keras.layers.LSTM, {"return_sequences": True}, {"return_sequences": True}, {"return_state": True}],
    [keras.layers.Bidirectional, {"return_sequences": True}, {"return_sequences": False}],
]


@pytest.mark.parametrize("masked", [False, True], ids=["dense", "masked"])
@pytest.mark.parametrize("stack", STACKS, ids=["lstm-x3", "bidirectional-x2"])
def test_stacked_layers_of_a_sequential_become_one_multilayer_model(rng, stack, masked):
    kind, *options = stack
    layers = [
        keras.layers.LSTM(7, **option) if kind is keras.layers.LSTM else kind(keras.layers.LSTM(7, **option))
        for option in options
    ]
    model = keras.Sequential([keras.Input((None, 5)), *([keras.layers.Masking(0.0)] if masked else []), *layers])
    _randomize(model, rng)
    imported = from_keras(model)
    assert imported.model.num_layers == len(options)
    x, _ = _right_padded(rng, [9, 5, 0] if masked else [9, 9, 9], 9, 5, 0.0)
    _assert_same(_keras_call(model, x), imported(x))


# ---- .keras files ---------------------------------------------------------------------------------------------------

# Keras's own saving converts its torch variables with np.array, which NumPy 2 warns about; not ours to fix.
keras_saving_warning = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)


def _saved_models(rng):
    """(name, model) pairs covering each file layout: a Sequential, a functional model, a Bidirectional, a stack."""
    unidirectional = keras.Sequential(
        [
            keras.Input((None, 5)),
            keras.layers.LSTM(
                7, return_sequences=True, go_backwards=True, recurrent_activation="hard_sigmoid", name="my_lstm"
            ),
        ]
    )
    bidirectional = keras.Sequential(
        [
            keras.Input((None, 5)),
            keras.layers.Masking(0.0),
            keras.layers.Bidirectional(
                keras.layers.LSTM(7, return_sequences=True, return_state=True), merge_mode="mul"
            ),
        ]
    )
    stacked = keras.Sequential(
        [
            keras.Input((None, 5)),
            keras.layers.LSTM(7, return_sequences=True, use_bias=False),
            keras.layers.LSTM(7, use_bias=False),
        ]
    )
    models = [
        ("sequential", unidirectional),
        ("bidirectional", bidirectional),
        ("stacked", stacked),
        ("functional", _functional_masked_model(rng)),
    ]
    return [(name, _randomize(model, rng)) for name, model in models]


@keras_saving_warning
def test_keras_file_is_read_without_keras(rng, tmp_path, monkeypatch):
    x, _ = _right_padded(rng, [9, 6, 0], 9, 5, 0.0)
    expected = {}
    for name, model in _saved_models(rng):
        model.save(tmp_path / f"{name}.keras")
        expected[name] = _keras_call(model, x)
    monkeypatch.setitem(sys.modules, "keras", None)  # any import of keras now fails
    for name, results in expected.items():
        _assert_same(results, from_keras(tmp_path / f"{name}.keras")(x))  # a pathlib.Path
        _assert_same(results, from_keras(str(tmp_path / f"{name}.keras"))(x))  # a str


@keras_saving_warning
def test_keras_file_in_a_process_without_keras(rng, tmp_path):
    """A fresh interpreter where keras cannot be imported reads the file and imports no keras module at all."""
    layer = keras.layers.Bidirectional(keras.layers.LSTM(33, return_sequences=True), merge_mode="concat")
    model = _randomize(keras.Sequential([keras.Input((None, 13)), layer]), rng)
    model.save(tmp_path / "model.keras")
    x = rng.standard_normal((3, 9, 13)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    script = textwrap.dedent(
        f"""
        import sys
        sys.modules["keras"] = None
        import numpy as np
        from fastlstm.interop.keras import from_keras
        imported = from_keras({str(tmp_path / "model.keras")!r})
        np.save({str(tmp_path / "ours.npy")!r}, imported(np.load({str(tmp_path / "x.npy")!r})))
        loaded = sorted(name for name in sys.modules if name.split(".")[0] == "keras" and sys.modules[name] is not None)
        assert not loaded, loaded
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)
    _assert_same(_keras_call(model, x), np.load(tmp_path / "ours.npy"))


@keras_saving_warning
def test_keras_file_of_a_bare_layer(rng, tmp_path):
    layer = _built_lstm(rng, 5, 7, return_state=True)
    keras.saving.save_model(layer, tmp_path / "layer.keras")
    x = rng.standard_normal((3, 9, 5)).astype(np.float32)
    _assert_same(_keras_call(layer, x), from_keras(tmp_path / "layer.keras")(x))


# ---- refusals -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "option, value, stored",
    [("activation", "gelu", "gelu"), ("recurrent_activation", "swish", "silu"), ("activation", "relu6", "relu6")],
)
def test_activation_without_equivalent_is_refused(rng, option, value, stored):
    layer = _built_lstm(rng, 5, 7, name="odd_lstm", **{option: value})
    with pytest.raises(ValueError, match=rf"'odd_lstm'.*{option}='{stored}'"):  # Keras stores swish as silu
        from_keras(layer)


def test_custom_activation_is_refused(rng):
    def doubled_tanh(x):
        return 2 * keras.ops.tanh(x)

    with pytest.raises(ValueError, match=r"'custom'.*activation='doubled_tanh'"):
        from_keras(_built_lstm(rng, 5, 7, activation=doubled_tanh, name="custom"))


def test_other_layers_in_a_model_are_refused(rng):
    model = keras.Sequential([keras.Input((None, 5)), keras.layers.LSTM(7), keras.layers.Dense(3, name="head")])
    with pytest.raises(ValueError, match=r"'head' \(Dense\).*one LSTM"):
        from_keras(model)
    inputs = keras.Input((None, 5))
    functional = keras.Model(inputs, keras.layers.Dense(3, name="head")(keras.layers.LSTM(7)(inputs)))
    with pytest.raises(ValueError, match=r"'head' \(Dense\)"):
        from_keras(functional)


def test_stacks_that_one_model_cannot_express_are_refused():
    different_units = keras.Sequential(
        [keras.Input((None, 5)), keras.layers.LSTM(7, return_sequences=True), keras.layers.LSTM(8, name="second")]
    )
    with pytest.raises(ValueError, match=r"'second'.*units"):
        from_keras(different_units)
    backwards = keras.Sequential(
        [
            keras.Input((None, 5)),
            keras.layers.LSTM(7, return_sequences=True, go_backwards=True, name="back"),
            keras.layers.LSTM(7),
        ]
    )
    with pytest.raises(ValueError, match=r"'back'.*go_backwards"):
        from_keras(backwards)
    summed = keras.Sequential(
        [
            keras.Input((None, 5)),
            keras.layers.Bidirectional(keras.layers.LSTM(7, return_sequences=True), merge_mode="sum", name="bi"),
            keras.layers.Bidirectional(keras.layers.LSTM(7)),
        ]
    )
    with pytest.raises(ValueError, match=r"'bi'.*merge_mode='sum'"):
        from_keras(summed)
    inputs = keras.Input((None, 5))
    hidden = keras.layers.LSTM(7, return_sequences=True)(inputs)
    functional = keras.Model(inputs, keras.layers.LSTM(7)(hidden))
    with pytest.raises(ValueError, match="one LSTM layer"):
        from_keras(functional)


def test_bidirectional_with_a_different_backward_layer_is_refused():
    layer = keras.layers.Bidirectional(
        keras.layers.LSTM(7), backward_layer=keras.layers.LSTM(7, go_backwards=True, activation="relu"), name="bi"
    )
    layer.build((None, None, 5))
    with pytest.raises(ValueError, match=r"'bi'.*activations"):
        from_keras(layer)


def test_stateful_and_unbuilt_layers_are_refused(rng):
    stateful = keras.layers.LSTM(7, stateful=True, name="kept")
    stateful.build((3, None, 5))
    with pytest.raises(ValueError, match=r"'kept'.*stateful=True.*stream"):
        from_keras(stateful)
    with pytest.raises(ValueError, match="not built"):
        from_keras(keras.layers.LSTM(7))


def test_bad_objects_and_paths_are_refused(tmp_path, monkeypatch):
    with pytest.raises(TypeError, match=r"obj: expected .*got numpy\.ndarray"):
        from_keras(np.zeros(3))
    with pytest.raises(TypeError, match="obj"):
        from_keras(fastlstm.LSTM(5, 7))
    with pytest.raises(FileNotFoundError, match="no such file"):
        from_keras(tmp_path / "missing.keras")
    with pytest.raises(IsADirectoryError):
        from_keras(tmp_path)
    (tmp_path / "legacy.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(64))
    with pytest.raises(ValueError, match=r"not a Keras 3 \.keras file"):
        from_keras(tmp_path / "legacy.h5")
    monkeypatch.setitem(sys.modules, "h5py", None)
    with pytest.raises(ImportError, match="pip install h5py"):
        from_keras(tmp_path / "legacy.h5")


@keras_saving_warning
def test_keras_2_and_incomplete_files_are_refused(rng, tmp_path):
    model = keras.Sequential([keras.Input((None, 5)), keras.layers.LSTM(7)])
    model.save(tmp_path / "model.keras")
    with zipfile.ZipFile(tmp_path / "model.keras") as archive:
        contents = {name: archive.read(name) for name in archive.namelist()}
    with zipfile.ZipFile(tmp_path / "keras2.keras", "w") as archive:
        for name, data in contents.items():
            archive.writestr(name, data if name != "metadata.json" else b'{"keras_version": "2.15.0"}')
    with pytest.raises(ValueError, match=r"Keras 2\.15\.0; only Keras 3"):
        from_keras(tmp_path / "keras2.keras")
    with zipfile.ZipFile(tmp_path / "config_only.keras", "w") as archive:
        archive.writestr("config.json", contents["config.json"])
    with pytest.raises(ValueError, match=r"lacks \['model.weights.h5'\]"):
        from_keras(tmp_path / "config_only.keras")


def test_bad_call_arguments_are_refused(rng):
    imported = from_keras(_built_lstm(rng, 5, 7))
    x = rng.standard_normal((3, 9, 5)).astype(np.float32)
    with pytest.raises(ValueError, match=r"x: expected a 3-D array \(N, T, 5\)"):
        imported(x[0])
    with pytest.raises(TypeError, match=r"initial_state: expected None or the list \[h, c\]"):
        imported(x, initial_state=_states(rng, 3, 7, 4))
    with pytest.raises(ValueError, match=r"initial_state\[1\]: expected shape \(3, 7\)"):
        imported(x, initial_state=[np.zeros((3, 7)), np.zeros((2, 7))])
    with pytest.raises(ValueError, match=r"mask: expected shape \(3, 9\)"):
        imported(x, mask=np.ones((3, 8), bool))
    masked = from_keras(keras.Sequential([keras.Input((None, 5)), keras.layers.Masking(), keras.layers.LSTM(7)]))
    with pytest.raises(ValueError, match="Masking layer computes the mask"):
        masked(x, mask=np.ones((3, 9), bool))
