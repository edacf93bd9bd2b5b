"""Character-level LSTM language model of the published evaluation (Tang poems).

Embedding(4845, 128) + 3-layer LSTM(128 -> 256) + Linear(256, 4845): 3,313,261 parameters.
The evaluation's own code is not public; the module names follow the most widely copied
PyTorch Tang-poetry CharRNN (``PoetryModel`` of chenyuntc/pytorch-book, chapter 9:
``embeddings``, ``lstm``, ``linear1``), with batch-first tensors.
"""

from __future__ import annotations

import torch
from torch import nn

LSTMState = tuple[torch.Tensor, torch.Tensor]


class CharLSTM(nn.Module):
    def __init__(self, vocab_size: int = 4845, embedding_dim: int = 128, hidden_dim: int = 256,
                 num_layers: int = 3) -> None:
        super().__init__()
        self.vocab_size = vocab_size
        self.embeddings = nn.Embedding(vocab_size, embedding_dim)
        self.lstm = nn.LSTM(embedding_dim, hidden_dim, num_layers=num_layers, batch_first=True)
        self.linear1 = nn.Linear(hidden_dim, vocab_size)

    def forward(self, x: torch.Tensor,
                state: LSTMState | None = None) -> tuple[torch.Tensor, LSTMState]:
        """``x`` (batch, time) character ids -> logits (batch, time, vocab) and the state."""
        out, state = self.lstm(self.embeddings(x), state)
        return self.linear1(out), state


@torch.inference_mode()
def generate(model: CharLSTM, prompt: torch.Tensor, new_chars: int, temperature: float = 1.0,
             generator: torch.Generator | None = None) -> torch.Tensor:
    """Autoregressive generation: the prompt in one pass, then one character per step.

    Returns the ``new_chars`` generated ids (batch, new_chars). ``temperature`` 0 picks the
    most likely character (greedy); above 0 samples from the softmax at that temperature.
    """
    logits, state = model(prompt)
    out = []
    last = logits[:, -1]
    for i in range(new_chars):
        if temperature > 0:
            probs = torch.softmax(last.float() / temperature, dim=-1)
            nxt = torch.multinomial(probs, 1, generator=generator)
        else:
            nxt = last.argmax(dim=-1, keepdim=True)
        out.append(nxt)
        if i + 1 < new_chars:
            logits, state = model(nxt, state)
            last = logits[:, -1]
    return torch.cat(out, dim=1)
