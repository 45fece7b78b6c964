"""The synthetic handwriting corpus: IAM layout, writer- and sentence-disjoint splits, determinism."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from asr.corpora.iam import read_iam
from asr.corpora.manifest import read_manifest
from asr.errors import UserError
from asr.image import load_line_image
from data.handwriting import hands, text
from data.handwriting.generate import generate
from data.handwriting.plan import line_text, plan_corpus
from data.synth_handwriting import main

ROOT = Path(__file__).resolve().parents[1]


def _available():
    try:
        hands.installed_hands()
        text.load_sentences(("wordnet", "bible"))
    except UserError as error:
        return str(error)
    return ""


UNAVAILABLE = _available()
needs_fonts = pytest.mark.skipif(
    bool(UNAVAILABLE), reason=f"handwriting fonts or sentence packages missing: {UNAVAILABLE}"
)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth") / "iam"
    specs = generate(root, lines=30, seed=7, jobs=2, progress=False)
    return root, specs


@needs_fonts
def test_the_iam_reader_reads_the_corpus_back(corpus):
    root, specs = corpus
    splits = read_iam(root)
    assert {k: len(v) for k, v in splits.items()} == {"train": 24, "dev": 3, "test": 3}
    by_id = {s.id: s for s in specs}
    for split, utterances in splits.items():
        for u in utterances:
            assert by_id[u.id].split == split and u.text == by_id[u.id].text and u.speaker == by_id[u.id].writer
            assert set(u.text) <= text.CHARACTERS and u.text == " ".join(u.text.split())
    # The JSONL manifests list the same lines.
    for split, utterances in splits.items():
        assert read_manifest(root / f"{split}.jsonl") == utterances


@needs_fonts
def test_writers_and_sentences_are_disjoint_between_splits(corpus):
    root, _ = corpus
    splits = read_iam(root)
    writers = {split: {u.speaker for u in utterances} for split, utterances in splits.items()}
    texts = {split: {u.text.lower() for u in utterances} for split, utterances in splits.items()}
    for a, b in (("train", "dev"), ("train", "test"), ("dev", "test")):
        assert not writers[a] & writers[b]
        assert not texts[a] & texts[b]
    roles = {f"{n:03d}": hand.role for n, hand in enumerate(hands.HANDS)}
    assert all(roles[w] == split for split, ws in writers.items() for w in ws)
    # Forms: every line of a form is by the form's writer (forms.txt agrees).
    forms = dict(line.split()[:2] for line in (root / "ascii" / "forms.txt").read_text().splitlines()[1:])
    assert all(forms[u.id.rsplit("-", 1)[0]] == u.speaker for us in splits.values() for u in us)


@needs_fonts
def test_images_load_as_ink_on_paper(corpus):
    root, specs = corpus
    for u in read_iam(root)["test"]:
        image = load_line_image(u.path)
        assert image.shape[0] >= 20 and image.shape[1] > image.shape[0]
        ink = (image > 0.5).float().mean()
        assert 0.01 < ink < 0.5  # strokes are drawn, and the paper was recognised as paper
    rows = [row.split() for row in (root / "ascii" / "lines.txt").read_text().splitlines() if not row.startswith("#")]
    first = rows[0][0]
    png = load_line_image(root / "lines" / first.split("-")[0] / first.rsplit("-", 1)[0] / f"{first}.png")
    assert [int(rows[0][6]), int(rows[0][7])] == [png.shape[1], png.shape[0]]


@needs_fonts
def test_same_seed_same_corpus_whatever_the_jobs(corpus, tmp_path):
    root, _ = corpus
    again = tmp_path / "again"
    generate(again, lines=30, seed=7, jobs=1, progress=False)
    assert (again / "ascii" / "lines.txt").read_text() == (root / "ascii" / "lines.txt").read_text()
    for name in ("trainset.txt", "validationset1.txt", "testset.txt"):
        assert (again / name).read_text() == (root / name).read_text()
    for u in read_iam(root)["train"][:5]:
        assert (again / u.path.relative_to(root)).read_bytes() == u.path.read_bytes()
    pools, writers = text.sentence_pools(("wordnet", "bible"), 0.1, 0.1), hands.installed_hands()
    seed_7, seed_8 = (plan_corpus(pools, writers, 30, seed, 0.1, 0.1) for seed in (7, 8))
    assert [s.text for s in seed_7] == [s.text for s in plan_corpus(pools, writers, 30, 7, 0.1, 0.1)]
    assert [s.text for s in seed_7] != [s.text for s in seed_8]


@needs_fonts
def test_rerun_resumes_and_other_settings_need_overwrite(tmp_path):
    out = tmp_path / "c"
    generate(out, lines=6, seed=1, jobs=1, progress=False)
    image = sorted((out / "lines").rglob("*.png"))[0]
    image.write_bytes(image.read_bytes())  # touch: a rerun must keep finished images
    stamp = image.stat().st_mtime_ns
    first = (out / "ascii" / "lines.txt").read_text()
    generate(out, lines=6, seed=1, jobs=1, progress=False)
    assert image.stat().st_mtime_ns == stamp and (out / "ascii" / "lines.txt").read_text() == first
    with pytest.raises(UserError, match="other settings"):
        generate(out, lines=6, seed=2, jobs=1, progress=False)
    generate(out, lines=6, seed=2, jobs=1, progress=False, overwrite=True)
    assert json.loads((out / "synth_handwriting.json").read_text())["seed"] == 2
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "mine.txt").write_text("keep")
    with pytest.raises(UserError, match="not empty"):
        generate(tmp_path / "busy", lines=6, seed=1, jobs=1, progress=False)


def test_no_fonts_names_the_packages(monkeypatch, tmp_path):
    monkeypatch.setattr(hands, "FONT_DIRS", (tmp_path,))
    with pytest.raises(UserError, match="apt-get install fonts-dkg-handwriting .*fonts-sjfonts"):
        hands.installed_hands()


@needs_fonts
def test_glyph_check_finds_characters_a_font_cannot_draw():
    font = hands.font_files()["Breip.ttf"]
    assert hands.missing_glyphs(font) == ""
    assert hands.missing_glyphs(font, frozenset("ab\u4e00\u0915")) == "\u0915\u4e00"


def test_the_command_runs_as_a_module_from_the_repo_root():
    result = subprocess.run(
        [sys.executable, "-m", "data.synth_handwriting", "--help"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0 and "--sheet PNG" in result.stdout and "fonts-breip" in result.stdout


def test_the_command_prints_a_user_error_without_a_traceback(tmp_path, capsys):
    assert main(["--out", str(tmp_path / "c"), "--lines", "10", "--sources", "nowhere"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown sentence source(s) ['nowhere']") and "Traceback" not in err


@needs_fonts
def test_lm_text_is_every_training_sentence_and_no_dev_or_test_one(corpus, tmp_path):
    root, _ = corpus
    out = tmp_path / "lm.txt"
    assert main(["--lm-text", str(out)]) == 0
    sentences = out.read_text().splitlines()
    assert sentences == text.sentence_pools(("wordnet", "bible"), 0.1, 0.1)["train"] and len(sentences) > 10000
    held_out = {u.text for split in ("dev", "test") for u in read_iam(root)[split]}
    lines = set(sentences)
    assert all(text.sentence_split(s, 0.1, 0.1) == "train" for s in sentences[::97])
    # A line is a run of its sentence's words; a held-out line's whole sentence is never in the text.
    assert not any(line in lines for line in held_out)


def test_line_text_is_a_run_of_the_sentence_words():
    rng = np.random.default_rng(0)
    sentence = " ".join(f"w{i}" for i in range(60))
    for target in (10, 25, 40):
        line = line_text(sentence, target, rng)
        assert line in sentence and len(line) >= target and line.split()[0] in sentence.split()
    assert line_text("short sentence", 30, rng) == "short sentence"


def test_sentences_are_split_by_text_alone():
    sentences = [f"sentence number {i}" for i in range(4000)]
    roles = [text.sentence_split(s, 0.1, 0.2) for s in sentences]
    assert roles == [text.sentence_split(s.upper(), 0.1, 0.2) for s in sentences]
    assert abs(roles.count("test") / 4000 - 0.2) < 0.03 and abs(roles.count("dev") / 4000 - 0.1) < 0.03


def test_clean_keeps_only_the_character_set():
    assert text.clean("\u201cWhy  not?\u201d   he said") == '"Why not?" he said'
    assert text.clean("costs $5 (or more)") is None
    assert text.clean("   ") is None


@needs_fonts
def test_the_shipped_line_model_reads_unseen_writers(corpus, tmp_path):
    """checkpoints/handwriting-small on lines by fonts it never saw: the batch evaluation and
    the file-by-file transcriber agree, and most characters are right."""
    import jiwer

    from asr.evaluation import evaluate
    from asr.transcribe import Transcriber

    root, _ = corpus
    transcriber = Transcriber.from_checkpoint(ROOT / "checkpoints" / "handwriting-small")
    lines = read_iam(root)["dev"] + read_iam(root)["test"]
    evaluate(transcriber, lines, tmp_path, log=lambda m: None)
    batch = {r["id"]: r["hypothesis"] for r in map(json.loads, (tmp_path / "results.jsonl").read_text().splitlines())}
    one_by_one = {line.id: transcriber.transcribe(line.path).text for line in lines}
    assert one_by_one == batch
    assert jiwer.cer([line.text for line in lines], [one_by_one[line.id] for line in lines]) < 0.6  # chance: ~1
