import json

import numpy as np
import pytest
import soundfile as sf

from asr.corpora import open_corpus
from asr.corpora.batching import LengthBatchSampler, length_batches
from asr.corpora.librispeech import read_librispeech
from asr.corpora.manifest import read_manifest
from asr.corpora.timit import CORE_TEST_SPEAKERS, DEV_SPEAKERS, read_timit
from asr.errors import UserError
from tests.conftest import make_noise_timit


def write_timit_utterance(folder, name, upper=True, samples=1600):
    folder.mkdir(parents=True, exist_ok=True)
    ext = (lambda e: e.upper()) if upper else (lambda e: e.lower())
    sf.write(folder / f"{name}.{ext('wav')}", np.zeros(samples, dtype=np.int16), 16000, format="NIST",
             subtype="PCM_16")
    (folder / f"{name}.{ext('phn')}").write_text(f"0 400 h#\n400 1200 sh\n1200 {samples} h#\n")
    (folder / f"{name}.{ext('wrd')}").write_text("400 1200 she\n")
    (folder / f"{name}.{ext('txt')}").write_text(f"0 {samples} She.\n")


def make_timit(root, train, test, upper=True):
    for part, speakers in (("TRAIN", train), ("TEST", test)):
        for n, speaker in enumerate(speakers):
            name = part if upper else part.lower()
            folder = root / name / f"DR{n % 8 + 1}" / speaker
            for utt in ("SA1", "SA2", "SI1000", "SX20"):
                write_timit_utterance(folder, utt, upper)
    return root


def test_timit_standard_splits(tmp_path):
    dev, core = sorted(DEV_SPEAKERS)[:3], sorted(CORE_TEST_SPEAKERS)[:2]
    other = ["MABC0"]
    root = make_timit(tmp_path / "TIMIT", ["FAAA0", "MBBB0"], dev + core + other)
    train = read_timit(tmp_path, "train")  # found one folder down
    assert len(train) == 2 * 2  # SA sentences excluded
    assert {u.speaker for u in train} == {"FAAA0", "MBBB0"}
    assert {u.speaker for u in read_timit(root, "dev")} == set(dev)
    assert {u.speaker for u in read_timit(root, "core")} == set(core)
    assert {u.speaker for u in read_timit(root, "test")} == set(dev + core + other)
    utt = train[0]
    assert utt.transcript("phones") == "h# sh h#" and utt.text == "She."
    assert utt.phones[1].start == 400 and utt.words[0].label == "she"
    assert len(read_timit(root, "train", with_sa=True)) == 8


def test_timit_lower_case_and_synthetic_splits(tmp_path):
    test_speakers = ["MSYA0", "FSYB0", "MSYC0", "MSYD0", "FSYE0", "MSYF0"]
    root = make_timit(tmp_path, ["MSYN0"], test_speakers, upper=False)
    dev = {u.speaker for u in read_timit(root, "dev")}
    core = {u.speaker for u in read_timit(root, "core")}
    assert len(dev) == 2 and dev.isdisjoint(core) and dev | core == set(test_speakers)
    assert core == {u.speaker for u in read_timit(root, "test")}
    corpus = open_corpus(root)
    assert (corpus.layout, corpus.modality, corpus.default_tokens) == ("timit", "audio", "timit61")
    assert corpus.read("dev") == read_timit(root, "dev")


def test_timit_errors(tmp_path):
    with pytest.raises(UserError, match="not a TIMIT tree"):
        read_timit(tmp_path, "train")
    make_timit(tmp_path, ["MAAA0"], ["MBBB0"])
    with pytest.raises(UserError, match="unknown TIMIT split"):
        read_timit(tmp_path, "validation")
    (tmp_path / "TRAIN" / "DR1" / "MAAA0" / "SX20.PHN").unlink()
    with pytest.raises(UserError, match="SX20.*PHN"):
        read_timit(tmp_path, "train")


def make_librispeech(root):
    for subset, speaker in (("train-clean-100", "19"), ("dev-clean", "84"), ("test-clean", "121")):
        chapter = root / subset / speaker / "198"
        chapter.mkdir(parents=True)
        lines = []
        for n in range(2):
            utt = f"{speaker}-198-{n:04d}"
            sf.write(chapter / f"{utt}.flac", np.zeros(800, dtype=np.int16), 16000)
            lines.append(f"{utt} WORDS OF {n}")
        (chapter / f"{speaker}-198.trans.txt").write_text("\n".join(lines) + "\n")
    return root


def test_librispeech(tmp_path):
    root = make_librispeech(tmp_path / "LibriSpeech")
    corpus = open_corpus(root)
    assert corpus.layout == "librispeech" and corpus.default_tokens == "speech-chars"
    assert {"train", "dev", "test", "dev-clean", "train-clean-100"} <= set(corpus.splits)
    train = corpus.read("train")
    assert [u.id for u in train] == ["19-198-0000", "19-198-0001"]
    assert train[1].text == "WORDS OF 1" and train[1].speaker == "19" and train[1].path.exists()
    assert read_librispeech(root / "dev-clean", "dev-clean")[0].id == "84-198-0000"
    with pytest.raises(UserError, match="no LibriSpeech subset.*train-other"):
        read_librispeech(root, "train-other-500")


def test_manifest(tmp_path):
    sf.write(tmp_path / "a.wav", np.zeros(800, dtype=np.int16), 16000)
    records = [{"audio": "a.wav", "text": "hello"}, {"audio": "a.wav", "text": "again", "id": "x", "speaker": "s"}]
    (tmp_path / "train.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n\n")
    utts = read_manifest(tmp_path / "train.jsonl")
    assert [u.text for u in utts] == ["hello", "again"] and utts[1].id == "x"
    corpus = open_corpus(tmp_path)
    assert corpus.layout == "manifest" and corpus.splits == ("train",) and corpus.modality == "audio"


@pytest.mark.parametrize("line, message", [
    ("{not json", "line 2: not valid JSON"),
    ('{"audio": "a.wav"}', "line 2: needs \"text\""),
    ('{"audio": "missing.wav", "text": "x"}', "missing.wav: listed in .* line 2 does not exist"),
])
def test_manifest_errors_name_the_line(tmp_path, line, message):
    sf.write(tmp_path / "a.wav", np.zeros(800, dtype=np.int16), 16000)
    (tmp_path / "m.jsonl").write_text('{"audio": "a.wav", "text": "ok"}\n' + line + "\n")
    with pytest.raises(UserError, match=message):
        read_manifest(tmp_path / "m.jsonl")


def test_open_corpus_errors(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        open_corpus(tmp_path / "nowhere")
    with pytest.raises(UserError, match="is not a corpus"):
        open_corpus(tmp_path)


def test_length_batches_group_similar_lengths():
    lengths = [50, 10, 30, 11, 52, 29, 12, 51]
    batches = length_batches(lengths, batch_size=3)
    assert sorted(i for b in batches for i in b) == list(range(8))
    assert [[lengths[i] for i in b] for b in batches] == [[10, 11, 12], [29, 30, 50], [51, 52]]
    frame_batches = length_batches(lengths, batch_size=0, max_frames=100)
    assert all(len(b) * max(lengths[i] for i in b) <= 100 for b in frame_batches)


def test_sampler_is_a_function_of_seed_and_epoch_and_resumes_mid_epoch():
    lengths = list(range(100, 140))
    sampler = LengthBatchSampler(lengths, batch_size=4, seed=3)
    sampler.set_epoch(0)
    epoch0 = list(sampler)
    sampler.set_epoch(1)
    assert list(sampler) != epoch0
    again = LengthBatchSampler(lengths, batch_size=4, seed=3)
    again.set_epoch(0, start=4)
    assert list(again) == epoch0[4:]
    assert sorted(i for b in epoch0 for i in b) == list(range(40))


def test_manifest_ids_must_be_unique(tmp_path):
    sf.write(tmp_path / "a.wav", np.zeros(800, dtype=np.int16), 16000)
    (tmp_path / "m.jsonl").write_text('{"audio": "a.wav", "text": "x"}\n{"audio": "a.wav", "text": "y"}\n')
    with pytest.raises(UserError, match="line 2: id 'a' repeats line 1"):
        read_manifest(tmp_path / "m.jsonl")


def test_a_synthesized_tree_takes_dev_from_the_speakers_its_spkrinfo_marks_dev(tmp_path):
    """The generator's held-out development voices (Use DEV in DOC/SPKRINFO.TXT) are the dev split,
    never mixed into test; without the mark, dev is every third test speaker."""
    root = make_noise_timit(tmp_path / "tree", train_speakers=2, test_speakers=3, per_speaker=1)
    assert {u.speaker for u in read_timit(root, "dev")} == {"MZTA0"}
    (root / "DOC").mkdir()
    (root / "DOC" / "SPKRINFO.TXT").write_text(
        "; ID  Sex  DR  Use  voice\nMZRA0  M  1  TRN  x\nMZTA0  M  1  TST  x\n"
        "MZTB0  M  1  DEV  y\nMZTC0  M  1  TST  x\n")
    assert {u.speaker for u in read_timit(root, "dev")} == {"MZTB0"}
    assert {u.speaker for u in read_timit(root, "test")} == {"MZTA0", "MZTC0"}


def test_a_synthesized_tree_gives_each_utterance_its_voice_and_region(tmp_path):
    """The voice comes from the SPKRINFO.TXT column its header names `voice`; the region is the DR folder.
    A speaker the file does not list has no voice (evaluation then groups by region)."""
    root = make_noise_timit(tmp_path / "tree", train_speakers=1, test_speakers=3, per_speaker=1)
    (root / "TEST" / "DR1" / "MZTC0").rename((root / "TEST" / "DR3").mkdir() or root / "TEST" / "DR3" / "MZTC0")
    (root / "DOC").mkdir()
    (root / "DOC" / "SPKRINFO.TXT").write_text(
        "; synthesized speakers: ID  Sex  DR  Use  voice  duration-stretch  warp\n"
        "MZRA0  M  1  TRN  kal  1.0  1.0\nMZTA0  M  1  TST  slt  1.0  1.0\nMZTB0  M  1  DEV  awb  1.0  1.0\n")
    found = {u.speaker: (u.voice, u.region) for u in read_timit(root, "train") + read_timit(root, "test")}
    assert found == {"MZRA0": ("kal", "DR1"), "MZTA0": ("slt", "DR1"), "MZTC0": ("", "DR3")}


def test_ldc_timit_speaker_info_has_no_voice(tmp_path):
    """LDC's SPKRINFO.TXT has a fifth column too (the recording date): it is no voice."""
    root = make_timit(tmp_path, ["MABC0"], sorted(CORE_TEST_SPEAKERS)[:2])
    (root / "DOC").mkdir()
    (root / "DOC" / "SPKRINFO.TXT").write_text(
        ";  ID  Sex DR Use  RecDate   BirthDate  Ht    Race Edu  Comments\n"
        "ABC0  M  1  TRN  03/03/86  06/17/60  5'11\"  WHT BS\n"
        "MABC0  M  1  TRN  03/03/86  06/17/60  5'11\"  WHT BS\n")
    assert {(u.voice, u.region) for u in read_timit(root, "train")} == {("", "DR1")}
