"""fastlstm inside PyTorch models: ``fastlstm.torch.optimize(model)`` replaces every ``torch.nn.LSTM`` and
``torch.nn.LSTMCell`` of a model by a subclass (``fastlstm.torch.LSTM``, ``LSTMCell``) whose inference runs in
fastlstm's core, keeping the model's parameters, ``state_dict`` and code as they are.

Importing ``fastlstm`` never imports torch; importing ``fastlstm.torch`` does (and registers the operators
``fastlstm::lstm`` and ``fastlstm::lstm_packed``).
"""

from ._modules import LSTM, LSTMCell
from ._optimize import optimize

__all__ = ["LSTM", "LSTMCell", "optimize"]
