import pytest

from asr.errors import UserError
from asr.tokens import (
    FOLD_61_TO_39,
    TIMIT_PHONES,
    TIMIT_PHONES_39,
    TokenSet,
    characters_from_texts,
    fold_phones,
    normalize_speech_text,
    speech_characters,
    timit_phones,
    token_set,
)


def test_timit_has_61_phones_folding_to_39():
    assert len(TIMIT_PHONES) == len(set(TIMIT_PHONES)) == 61
    assert len(TIMIT_PHONES_39) == 39
    assert set(FOLD_61_TO_39) <= set(TIMIT_PHONES)
    assert "sil" in TIMIT_PHONES_39 and "q" not in TIMIT_PHONES_39


def test_lee_hon_folding():
    assert fold_phones(["h#", "q", "ix", "tcl", "t", "ax-h", "zh", "pau", "en", "nx"]) == \
        ["sil", "ih", "sil", "t", "ah", "sh", "sil", "n", "n"]
    # every 39-class label is either a kept phone or 'sil'
    assert set(TIMIT_PHONES_39) - {"sil"} <= set(TIMIT_PHONES)


def test_timit_token_set_round_trip():
    tokens = timit_phones()
    assert len(tokens) == 62 and tokens.symbols[0] == "<blank>" and tokens.blank == 0
    ids = tokens.encode_text("h# sh iy hv ae dcl h#")
    assert 0 not in ids
    assert tokens.to_text(ids) == "h# sh iy hv ae dcl h#"
    assert TokenSet.from_dict(tokens.to_dict()) == tokens


def test_unknown_label_names_the_source():
    with pytest.raises(UserError, match="SA1.PHN.*'zz'"):
        timit_phones().encode_text("h# zz h#", source="SA1.PHN")


def test_speech_characters_normalise_text():
    tokens = speech_characters()
    assert normalize_speech_text("Don't  ASK, Me-Why! Café") == "don't ask me why cafe"
    assert tokens.to_text(tokens.encode_text("Hello, World")) == "hello world"


def test_characters_from_texts_keep_case_and_punctuation():
    tokens = characters_from_texts(["A cat.", "Dog!"])
    assert tokens.symbols[:2] == ("<blank>", " ")
    assert set(tokens.symbols[2:]) == set("Acat.Dog!") - {" "}
    assert tokens.to_text(tokens.encode_text("A Dog.")) == "A Dog."


def test_token_set_by_name():
    assert token_set("timit61") == timit_phones()
    with pytest.raises(UserError, match="unknown token set"):
        token_set("klingon")
