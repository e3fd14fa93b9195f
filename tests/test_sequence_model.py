"""``SequenceModel``: embedding -> LSTM -> linear -> softmax, against the same torch modules, at every ISA; the
softmax kernel against float64; lengths, predictions and refusals.

Tolerance: the LSTM part is held to fastlstm.testing's bound elsewhere (test_parity); here the end result is compared
with torch's within fastlstm.testing.MAX_TOLERANCE (1e-5): probabilities lie in [0, 1] and the head adds a dot
product of num_directions*H terms and one softmax (a few ulp) to LSTM outputs that differ by ~1e-7."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import fastlstm
from fastlstm import _core
from fastlstm.testing import SIMD_TAIL_SIZES


class Tagger(torch.nn.Module):
    def __init__(self, vocabulary, embedding, hidden, classes, bidirectional, batch_first):
        super().__init__()
        self.embed = torch.nn.Embedding(vocabulary, embedding)
        self.lstm = torch.nn.LSTM(embedding, hidden, 2, bidirectional=bidirectional, batch_first=batch_first)
        self.dropout = torch.nn.Dropout(0.3)  # the identity in eval mode
        self.head = torch.nn.Linear(hidden * (2 if bidirectional else 1), classes)

    def forward(self, tokens):
        return torch.softmax(self.head(self.dropout(self.lstm(self.embed(tokens))[0])), dim=-1)


@pytest.mark.parametrize("bidirectional, batch_first", [(False, False), (True, True)])
def test_matches_torch(isa, rng, bidirectional, batch_first):
    torch.manual_seed(0)
    module = Tagger(50, 9, 17, 31, bidirectional, batch_first).eval()
    model = fastlstm.SequenceModel.from_torch(module)
    assert model.lstm.batch_first == batch_first and model.num_classes == 31
    tokens = rng.integers(0, 50, (3, 11) if batch_first else (11, 3))
    with torch.inference_mode():
        expected = module(torch.from_numpy(tokens)).numpy()
    probabilities = model.predict_proba(tokens)
    assert probabilities.shape == expected.shape
    assert np.abs(probabilities - expected).max() <= 1e-5
    assert np.allclose(probabilities.sum(-1), 1, atol=1e-6)
    predictions = model.predict(tokens)
    # the arg-max agrees wherever torch's top two classes are not within the tolerance of each other
    top_two = np.sort(expected, axis=-1)[..., -2:]
    clear = top_two[..., 1] - top_two[..., 0] > 2e-5
    assert np.array_equal(predictions[clear], expected.argmax(-1)[clear])


@pytest.mark.parametrize("precision", ["bf16", "int8"])
def test_a_reduced_precision_runs_the_lstm_and_keeps_the_head(rng, precision):
    torch.manual_seed(0)
    module = Tagger(50, 9, 17, 31, False, False).eval()
    reduced = fastlstm.SequenceModel.from_torch(module, precision=precision)
    exact = fastlstm.SequenceModel.from_torch(module)
    assert (reduced.lstm.precision, exact.lstm.precision) == (precision, "fp32")
    tokens = rng.integers(0, 50, (11, 3))
    # the LSTM is the reduced one, bitwise; the head is the same float32 product on its output
    features = reduced.embedding[tokens]
    np.testing.assert_array_equal(reduced.logits(tokens)[1][0], exact.lstm.astype(precision)(features)[1][0])
    output = reduced.lstm(features)[0]
    weight, bias = module.head.weight.detach().numpy(), module.head.bias.detach().numpy()
    expected = output.astype(np.float64) @ weight.T.astype(np.float64) + bias
    assert np.abs(reduced.logits(tokens)[0] - expected).max() <= 1e-5  # float32 sums of 17 products of |x| <= 1
    assert not np.array_equal(reduced.logits(tokens)[0], exact.logits(tokens)[0])


def test_without_embedding_and_with_lengths(rng):
    lstm = fastlstm.LSTM(6, 8, seed=1)
    weight = rng.standard_normal((5, 8)).astype(np.float32)
    model = fastlstm.SequenceModel(lstm, weight)  # no bias
    x = rng.standard_normal((7, 3, 6)).astype(np.float32)
    lengths = np.array([7, 0, 4])
    probabilities = model.predict_proba(x, lengths=lengths)
    output, _ = lstm(x, lengths=lengths)
    logits = output @ weight.T
    expected = np.exp(logits - logits.max(-1, keepdims=True))
    expected /= expected.sum(-1, keepdims=True)
    valid = np.arange(7)[:, None] < lengths[None, :]
    assert np.abs(probabilities[valid] - expected[valid]).max() <= 1e-6
    assert not probabilities[~valid].any()
    predictions = model.predict(x, lengths=lengths)
    assert (predictions[~valid] == -1).all() and (predictions[valid] >= 0).all()
    logits_out, (h_n, _) = model.logits(x)
    assert np.abs(logits_out - lstm(x)[0] @ weight.T).max() <= 1e-5 and h_n.shape == (1, 3, 8)


@pytest.mark.parametrize("columns", (*SIMD_TAIL_SIZES, 1000))
def test_softmax_kernel(columns, rng):
    x = (rng.standard_normal((4, columns)) * 20).astype(np.float32)
    exact = np.exp(x.astype(np.float64) - x.max(1, keepdims=True))
    exact /= exact.sum(1, keepdims=True)
    for isa in fastlstm.available_isas():
        # a few ulp of each probability (<= 1) plus the sum's rounding: 1e-6 leaves a factor 8 to spare at n = 1000
        assert np.abs(_core.testing.softmax_rows(isa, x) - exact).max() <= 1e-6
        special = _core.testing.softmax_rows(
            isa, np.array([[np.nan, 1, 2], [np.inf, 0, 1], [-np.inf, 0, 0]], np.float32)
        )
        assert np.isnan(special[:2]).all() and np.allclose(special[2], [0, 0.5, 0.5])


def test_refusals_are_named(rng):
    lstm = fastlstm.LSTM(6, 8)
    with pytest.raises(ValueError, match=r"weight: expected shape \(classes, 8\)"):
        fastlstm.SequenceModel(lstm, np.zeros((5, 7)))
    with pytest.raises(ValueError, match=r"bias: expected shape \(5,\)"):
        fastlstm.SequenceModel(lstm, np.zeros((5, 8)), np.zeros(4))
    with pytest.raises(ValueError, match=r"embedding: expected shape \(vocabulary, 6\)"):
        fastlstm.SequenceModel(lstm, np.zeros((5, 8)), embedding=np.zeros((10, 5)))
    model = fastlstm.SequenceModel(lstm, np.zeros((5, 8)), embedding=np.zeros((10, 6)))
    with pytest.raises(ValueError, match=r"x: expected token ids in \[0, 10\).*from 0 to 10"):
        model.predict(np.array([[0, 10]]))
    with pytest.raises(TypeError, match=r"x: expected integer token ids"):
        model.predict(np.zeros((2, 2)))
    with pytest.raises(ValueError, match=r"module: expected children Embedding \(optional\), LSTM, Linear"):
        fastlstm.SequenceModel.from_torch(torch.nn.Sequential(torch.nn.LSTM(3, 4), torch.nn.ReLU()))
    with pytest.raises(ValueError, match=r"x: a sequence model takes a batch \(T, N, input_size\), got shape \(4, 6\)"):
        fastlstm.SequenceModel(lstm, np.zeros((5, 8))).predict(np.zeros((4, 6), np.float32))
    with pytest.raises(TypeError, match=r"lstm: expected a fastlstm.LSTM"):
        fastlstm.SequenceModel(object(), np.zeros((5, 8)))


@pytest.mark.parametrize("bidirectional", [False, True])
def test_from_keras_matches_keras(isa, rng, bidirectional):
    import os

    os.environ.setdefault("KERAS_BACKEND", "torch")
    import keras

    keras.utils.set_random_seed(1)
    recurrent = keras.layers.LSTM(13, return_sequences=True)
    model = keras.Sequential(
        [
            keras.Input((None,), dtype="int32"),
            keras.layers.Embedding(40, 7),
            keras.layers.Bidirectional(recurrent) if bidirectional else recurrent,
            keras.layers.Dropout(0.2),
            keras.layers.Dense(9, activation="softmax"),
        ]
    )
    ours = fastlstm.SequenceModel.from_keras(model)
    tokens = rng.integers(0, 40, (3, 6)).astype(np.int32)
    expected = model(tokens).detach().cpu().numpy()  # keras on torch: a torch tensor
    assert np.abs(ours.predict_proba(tokens) - expected).max() <= 1e-5
    with pytest.raises(
        ValueError, match=r"expected layers Embedding \(optional\), LSTM or Bidirectional\(LSTM\), Dense"
    ):
        fastlstm.SequenceModel.from_keras(keras.Sequential([keras.Input((4, 3)), keras.layers.Dense(2)]))
