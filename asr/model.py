"""`CTCModel`: feature normalisation, stacked peephole (B)LSTM, linear, log-softmax.

The recurrent cell is ``config.cell`` (peephole by default; asr/lstm.py lists the
others); the summary's parameter list and count are those of the chosen cell, which
has only the parameters it uses.

The network of Graves, Mohamed & Hinton (2013), "Speech recognition with deep
recurrent neural networks", section 2 and Table 1 (the CTC rows): N stacked
bidirectional LSTM layers with peephole connections feed a linear layer to the
K labels + blank, normalised by a softmax, trained with CTC (Graves et al. 2006).
Weights start uniform in [-0.1, 0.1]. The model is built from its config alone;
the normalisation statistics are buffers, so they travel in the state dict.
"""

from __future__ import annotations

import torch
from torch import nn

from asr.config import ModelConfig
from asr.features import Normalizer
from asr.lstm import PeepholeLSTM


class CTCModel(nn.Module):
    """Features ``(B, T, D)`` + lengths -> log label posteriors ``(B, T, V)``, blank = 0."""

    def __init__(self, input_dim: int, num_tokens: int, config: ModelConfig):
        super().__init__()
        self.input_dim, self.num_tokens, self.config = input_dim, num_tokens, config
        self.normalizer = Normalizer(input_dim, mode=config.normalize)
        self.lstm = PeepholeLSTM(input_dim, config.hidden_size, num_layers=config.num_layers,
                                 bidirectional=config.bidirectional, cell=config.cell)
        directions = 2 if config.bidirectional else 1
        self.output = nn.Linear(directions * config.hidden_size, num_tokens)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for parameter in self.parameters():
            nn.init.uniform_(parameter, -self.config.init_range, self.config.init_range)

    def forward(self, features: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        hidden = self.lstm(self.normalizer(features, lengths), lengths)
        if isinstance(hidden, tuple):
            hidden = hidden[0]
        return torch.log_softmax(self.output(hidden).float(), dim=-1)

    @torch.no_grad()
    def forward_state(self, features: torch.Tensor, state=None) -> tuple[torch.Tensor, list]:
        """The next frames ``(B, T, D)`` of unpadded sequences, the recurrent state carried from the
        previous call (`PeepholeLSTM.forward_state`; unidirectional models with global or no
        normalisation) -> log posteriors ``(B, T, V)`` and the state after them."""
        lengths = torch.full((features.shape[0],), features.shape[1])
        hidden, state = self.lstm.forward_state(self.normalizer(features, lengths), state)
        return torch.log_softmax(self.output(hidden).float(), dim=-1), state

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def summary(self) -> str:
        c = self.config
        kind = "bidirectional" if c.bidirectional else "unidirectional"
        lines = [
            f"CTCModel: {self.input_dim} inputs -> {c.num_layers} x {c.hidden_size} {kind} "
            f"{self.lstm.cell} {'RNN' if self.lstm.cell in ('gru', 'rnn') else 'LSTM'} "
            f"-> {self.num_tokens} outputs (blank included)",
            f"normalisation: {c.normalize}",
        ]
        lines += [f"  {name:<28} {tuple(p.shape)}" for name, p in self.named_parameters()]
        n = self.num_parameters()
        lines.append(f"parameters: {n} ({n:,}; {n / 1e6:.1f}M)")
        return "\n".join(lines)
