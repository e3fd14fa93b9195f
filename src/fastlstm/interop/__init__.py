"""Models in and out of other frameworks, one module per framework and direction:

* ``pytorch``: ``from_torch`` (a ``torch.nn.LSTM``, ``LSTMCell`` or their ``state_dict``) and ``to_torch``;
* ``onnx_export``: ``lstm_to_onnx`` / ``save_onnx``, behind ``LSTM.to_onnx``;
* ``onnx_import``: ``from_onnx``, reading an ONNX LSTM graph;
* ``keras``: ``from_keras`` (a Keras 3 layer, model or ``.keras`` file), which returns a ``KerasLSTM``.

The modules whose names start with an underscore are their parts, and ``_common`` holds what several of them use:
PyTorch's parameter-name suffixes and the gate and peephole orders of PyTorch and ONNX. The public names are
re-exported by ``fastlstm`` itself; the frameworks are imported only when a function needs them.
"""
