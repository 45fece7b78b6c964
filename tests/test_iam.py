"""The IAM layout reader and the JSONL image manifest reader, on tiny trees made here."""

import json

import pytest
from PIL import Image, ImageDraw, ImageFont

from asr.corpora.base import Utterance
from asr.corpora.iam import TASK_FOLDER, iam_splits, line_image_path, read_iam, read_iam_split
from asr.errors import UserError
from asr.image import load_line_image

LINES = {
    # id: (status, transcription as lines.txt writes it)
    "a01-000u-00": ("ok", "A|MOVE|to|stop|Mr.|Gaitskell|from"),
    "a01-000u-01": ("err", "nominating|any|more|Labour|life|Peers"),
    "a01-003-00": ("ok", "Though|they|may|gather|some|Left-wing|support|,"),
    "b02-010-00": ("ok", "\"|Why|not|?|\"|he|asked|."),
    "b02-010-01": ("ok", "It's|a|fine|day|;|isn't|it|:|&quot;|yes|!"),
}


def render(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.new("L", (12 * len(text) + 20, 40), 240)
    ImageDraw.Draw(image).text((10, 8), text, font=ImageFont.load_default(size=20), fill=30)
    image.save(path)


def make_iam(root, lines=LINES, forms=True, images=True):
    (root / "ascii").mkdir(parents=True)
    header = ("#--- lines.txt ---\n#\n"
              "# format: a01-000u-00 ok 154 19 408 746 1661 89 A|MOVE|to|stop|Mr.|Gaitskell|from\n#\n")
    body = "".join(f"{i} {status} 176 8 300 400 1500 90 {text}\n" for i, (status, text) in lines.items())
    (root / "ascii" / "lines.txt").write_text(header + body)
    if forms:
        (root / "ascii" / "forms.txt").write_text(
            "# form writer ...\na01-000u 000 2 prt 7 5 52 36\na01-003 001 2 prt 6 6 50 50\n"
            "b02-010 002 1 prt 2 2 10 10\n"
        )
    if images:
        for line_id, (_, text) in lines.items():
            render(line_image_path(root, line_id), text.replace("|", " "))
    return root


def write_splits(folder, train=("a01-000u",), dev=("a01-003-00",), test=("b02-010-00", "b02-010-01")):
    folder.mkdir(parents=True, exist_ok=True)
    for name, ids in (("trainset.txt", train), ("validationset1.txt", dev), ("testset.txt", test)):
        (folder / name).write_text("".join(f"{i}\n" for i in ids))


def test_reads_lines_by_split_with_writers_and_spaces(tmp_path):
    root = make_iam(tmp_path / "iam")
    write_splits(root)
    corpus = read_iam(root)
    assert set(corpus) == {"train", "dev", "test"}
    # A form id in a split file takes all the form's lines.
    assert [u.id for u in corpus["train"]] == ["a01-000u-00", "a01-000u-01"]
    first = corpus["train"][0]
    assert first == Utterance(
        "a01-000u-00", root / "lines" / "a01" / "a01-000u" / "a01-000u-00.png", "A MOVE to stop Mr. Gaitskell from",
        "000",
    )
    assert [u.speaker for u in corpus["dev"]] == ["001"]
    assert [u.text for u in corpus["test"]] == ['" Why not ? " he asked .', "It's a fine day ; isn't it : \" yes !"]
    for utterances in corpus.values():
        for utterance in utterances:
            assert load_line_image(utterance.path).dim() == 2


def test_without_forms_txt_the_speaker_is_the_form(tmp_path):
    root = make_iam(tmp_path / "iam", forms=False)
    write_splits(root)
    assert [u.speaker for u in read_iam(root)["test"]] == ["b02-010", "b02-010"]


def test_skip_err_drops_badly_segmented_lines(tmp_path):
    root = make_iam(tmp_path / "iam")
    write_splits(root)
    assert [u.id for u in read_iam(root, skip_err=True)["train"]] == ["a01-000u-00"]


def test_split_files_elsewhere_or_in_the_task_folder(tmp_path):
    root = make_iam(tmp_path / "iam")
    write_splits(tmp_path / "task")
    assert len(read_iam(root, tmp_path / "task")["test"]) == 2
    write_splits(root / TASK_FOLDER, test=("b02-010-01",))
    assert [u.id for u in read_iam(root)["test"]] == ["b02-010-01"]


def test_custom_split_mapping(tmp_path):
    root = make_iam(tmp_path / "iam")
    write_splits(root)
    corpus = read_iam(root, splits={"train": ("trainset.txt", "validationset1.txt"), "test": ("testset.txt",)})
    assert [u.id for u in corpus["train"]] == ["a01-000u-00", "a01-000u-01", "a01-003-00"]
    assert set(corpus) == {"train", "test"}


def test_missing_split_file_is_named(tmp_path):
    root = make_iam(tmp_path / "iam")
    write_splits(root)
    (root / "validationset1.txt").unlink()
    with pytest.raises(UserError, match=r"validationset1\.txt: split file not found"):
        read_iam(root)


def test_listed_lines_without_image_or_transcription_are_reported(tmp_path):
    root = make_iam(tmp_path / "iam")
    write_splits(root, test=("b02-010-00", "b02-010-01", "z09-999-00"))
    line_image_path(root, "b02-010-01").unlink()
    with pytest.raises(UserError, match=r"2 line\(s\).*b02-010-01 \(no image.*z09-999-00 \(not in lines.txt\)"):
        read_iam(root)
    with pytest.warns(UserWarning, match="2 line"):
        corpus = read_iam(root, missing="skip")
    assert [u.id for u in corpus["test"]] == ["b02-010-00"]


def test_a_line_in_two_splits_is_an_error(tmp_path):
    root = make_iam(tmp_path / "iam")
    write_splits(root, dev=("a01-003-00", "a01-000u-01"))
    with pytest.raises(UserError, match="a01-000u-01 is also in the train split"):
        read_iam(root)


def test_not_an_iam_folder_or_malformed_lines_txt(tmp_path):
    with pytest.raises(UserError, match="lines.txt: not found"):
        read_iam(tmp_path)
    root = make_iam(tmp_path / "iam", images=False)
    with open(root / "ascii" / "lines.txt", "a") as file:
        file.write("a01-000u-02 maybe 1 2 3 4 5 6 words\n")
    write_splits(root)
    with pytest.raises(UserError, match=r"lines\.txt:10: not an IAM lines.txt entry"):
        read_iam(root)


# ---------------------------------------------------------------- manifests


def test_open_corpus_reads_an_iam_tree_by_split(tmp_path):
    from asr.corpora import open_corpus

    make_iam(tmp_path)
    write_splits(tmp_path)
    corpus = open_corpus(tmp_path)
    assert (corpus.layout, corpus.modality, corpus.default_tokens) == ("iam", "image", "chars")
    assert corpus.splits == ("train", "dev", "test") == tuple(iam_splits(tmp_path))
    assert corpus.read("test") == read_iam_split(tmp_path, "test") == read_iam(tmp_path)["test"]
    with pytest.raises(UserError, match="unknown IAM split"):
        corpus.read("validation")


def test_image_manifests_go_through_the_one_manifest_reader(tmp_path):
    from asr.corpora import open_corpus

    render(tmp_path / "img" / "one.png", "first line")
    (tmp_path / "train.jsonl").write_text(
        json.dumps({"image": "img/one.png", "text": "first line", "writer": "w7"}) + "\n")
    corpus = open_corpus(tmp_path / "train.jsonl")
    assert (corpus.layout, corpus.modality, corpus.default_tokens) == ("manifest", "image", "chars")
    assert corpus.read("train") == [Utterance("one", tmp_path / "img" / "one.png", "first line", "w7")]
