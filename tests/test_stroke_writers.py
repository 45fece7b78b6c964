"""Stroke writers: Hershey glyphs read right, each writer a hand of its own, deterministic, held out whole."""

from collections import defaultdict
from dataclasses import replace

import numpy as np
import pytest

from asr.errors import UserError
from data.handwriting import hands, hershey, strokes, text
from data.handwriting.plan import LineSpec, Pen, plan_corpus
from data.handwriting.render import render_line

needs_hershey = pytest.mark.skipif(not (hershey.HERSHEY_DIR / "futural.jhf").is_file(),
                                   reason="hershey-fonts-data is not installed")
LINE = "And God said, Let there be light: 0123?"


def pen(writer: int, **changes) -> Pen:
    base = Pen(strokes.pen_font(writer), x_height=18.0, slant=5.0, stroke=0, ink=0.8, paper=0.95, spacing=1.0)
    return replace(base, **changes)


def test_a_jhf_record_is_parsed_with_pen_ups_and_continuation_lines():
    # 'R' is 0: "RR" is the point (0, 0); " R" lifts the pen; the record goes on over a second line
    record = "12345  6JZNFNM RVFV\nM\n"
    [glyph] = hershey.parse_jhf(record)
    assert (glyph.left, glyph.right) == (-8, 8)
    assert glyph.strokes == (((-4.0, -12.0), (-4.0, -5.0)), ((4.0, -12.0), (4.0, -5.0)))


@needs_hershey
@pytest.mark.parametrize("name", hershey.STROKE_FONTS)
def test_every_stroke_font_draws_every_character_of_the_corpus(name):
    glyphs = hershey.load_font(name)
    assert all(glyphs[c].strokes for c in text.CHARACTERS - {" "})
    baseline, x_height = hershey.x_metrics(name)
    assert baseline == 9 and x_height > 5


def test_missing_hershey_data_names_the_package(monkeypatch, tmp_path):
    monkeypatch.setattr(hershey, "HERSHEY_DIR", tmp_path)
    hershey.load_font.cache_clear()
    try:
        with pytest.raises(UserError, match="apt-get install hershey-fonts-data .*--stroke-writers 0"):
            hands.stroke_hands(3)
    finally:
        hershey.load_font.cache_clear()


def test_a_writer_is_its_seed_and_writers_differ():
    assert strokes.stroke_style(3) == strokes.stroke_style(3)
    styles = [strokes.stroke_style(k) for k in range(24)]
    assert len(set(styles)) == 24
    assert len({s.font for s in styles}) > 1 and len({round(s.slant) for s in styles}) > 5


@needs_hershey
def test_the_same_line_spec_gives_the_same_pixels():
    spec = LineSpec("s30-000-00", "train", "030", LINE, pen(2), (0, 5))
    first, again = render_line(spec), render_line(spec)
    assert first.dtype == np.uint8 and first.ndim == 2
    assert np.array_equal(first, again)


@needs_hershey
def test_other_writers_and_other_lines_differ():
    base = render_line(LineSpec("a", "train", "030", LINE, pen(2), (0, 5)))
    other_line = render_line(LineSpec("a", "train", "030", LINE, pen(2), (0, 6)))
    assert base.shape != other_line.shape or not np.array_equal(base, other_line)
    for writer in (3, 4):
        other = render_line(LineSpec("a", "train", "030", LINE, pen(writer), (0, 5)))
        assert base.shape != other.shape or not np.array_equal(base, other)


@needs_hershey
def test_a_stroke_line_is_dark_ink_on_light_paper_with_the_whole_text():
    image = render_line(LineSpec("a", "train", "030", LINE, pen(1), (0, 1)))
    assert np.median(image) > 200 and image.min() < 120
    assert image.shape[1] > 10 * image.shape[0] / 3  # a line, not a blob: about 40 letters wide


def test_one_stroke_writer_in_eight_is_for_dev_and_one_for_test():
    roles = [hands.stroke_role(k) for k in range(24)]
    assert roles.count("dev") == 3 and roles.count("test") == 3 and roles.count("train") == 18


def test_stroke_writer_count_is_bounded():
    with pytest.raises(UserError, match="--stroke-writers must be 0.."):
        hands.stroke_hands(hands.MAX_STROKE_WRITERS + 1)


@needs_hershey
def test_held_out_stroke_writers_never_write_a_training_line():
    writers = hands.stroke_hands(16)
    pools = {"train": ["a b c"] * 5, "dev": ["d e f"] * 5, "test": ["g h i"] * 5}
    specs = plan_corpus(pools, writers, 600, 0, 0.15, 0.15)
    splits_of = defaultdict(set)
    for spec in specs:
        splits_of[spec.writer].add(spec.split)
    assert all(len(s) == 1 for s in splits_of.values())
    role = {f"{number:03d}": hand.role for number, hand, _ in writers}
    assert {w: next(iter(s)) for w, s in splits_of.items()} == {w: role[w] for w in splits_of}
    assert {s.split for s in specs} == {"train", "dev", "test"}
    # a writer keeps its own slant on every form, give or take a little
    for number, hand, _ in writers:
        slants = [s.pen.slant for s in specs if s.writer == f"{number:03d}"]
        assert slants and max(abs(x - hand.style.slant) for x in slants) < 10
