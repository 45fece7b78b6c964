"""Corpus readers: each turns a corpus on disk into lists of `Utterance`, by split.

One reader per layout (TIMIT, LibriSpeech, JSONL manifests, IAM handwriting);
`open_corpus` looks at a path and picks the reader. Readers only list files and
transcripts: they never read audio or compute features.
"""

from asr.corpora.base import Segment, Utterance
from asr.corpora.corpus import Corpus, open_corpus

__all__ = ["Corpus", "Segment", "Utterance", "open_corpus"]
