"""N-gram language models for shallow fusion with the CTC beam search.

- `asr.lm.arpa`: `NGramLM`, the model as ARPA holds it (log10 probabilities and
  backoff weights), with `load_arpa` / `NGramLM.write_arpa` and the reference
  backoff rule `NGramLM.log10_prob`.
- `asr.lm.kneser_ney`: `train_ngram`, interpolated Kneser-Ney (Chen & Goodman 1999).
- `asr.lm.pruning`: count cut-offs with the backoff weights recomputed (the model stays normalised).
- `asr.lm.tables`: the model compiled into tensors, searched for many states at once.
- `asr.lm.scorers`: `NGramTokenScorer` and `NGramWordScorer`, what the beam search
  (`asr.decoding.prefix_beam_search`) asks of a language model.
- `asr.lm.cli`: ``python -m asr.lm``, an ARPA model of a corpus's training transcripts.

The LM knows nothing of the decoder: tuning the fusion weights on held-out data,
which needs both, is `asr.fusion.tune_fusion`.
"""

from asr.lm.arpa import ARPA_SPACE, BOS, EOS, LOG10_ZERO, SPACE, UNK, NGramLM, NGramTable, load_arpa
from asr.lm.cli import main, transcripts_as_symbols
from asr.lm.kneser_ney import train_ngram
from asr.lm.scorers import NGramTokenScorer, NGramWordScorer

__all__ = [
    "ARPA_SPACE", "BOS", "EOS", "LOG10_ZERO", "SPACE", "UNK", "NGramLM", "NGramTable", "NGramTokenScorer",
    "NGramWordScorer", "load_arpa", "main", "train_ngram", "transcripts_as_symbols",
]
