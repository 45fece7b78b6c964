"""A handwritten text-line corpus in the IAM layout, synthesised from handwriting fonts and stroke writers.

No handwriting corpus can be downloaded here, so this writes one that the IAM
reader (`asr.corpora.iam.read_iam`) reads like the real thing:

    <out>/ascii/lines.txt, ascii/forms.txt      IAM's formats ('|' between words)
    <out>/lines/s03/s03-012/s03-012-04.png     greyscale line images
    <out>/trainset.txt validationset1.txt testset.txt   writer-disjoint splits
    <out>/train.jsonl dev.jsonl test.jsonl      the same lines as image manifests
    <out>/writers.txt                           which font is which writer

Modules, in the order data flows through them:
``text`` (sentences from WordNet and the King James Bible, each assigned to a
split by a hash of its text) -> ``hands`` (handwriting font families, one per
writer, and stroke writers, ``strokes`` drawing ``hershey``'s single-stroke glyphs
in a hand per seed; each writer in one split) -> ``plan`` (forms, lines and the pen of each form,
drawn from the seed) -> ``render`` (the words in ink, by font or by ``strokes``) -> ``distortion`` (slant,
tilt, elastic distortion, paper, noise and blur) -> ``tree`` (the folder, the
index files, a contact sheet) -> ``generate`` (all of it in parallel,
resumable). ``data.synth_handwriting`` is the command line.
"""
