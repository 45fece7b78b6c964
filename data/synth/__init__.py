"""A TIMIT-layout corpus spoken by Debian's speech synthesizers (flite, festival, espeak-ng).

Modules, in the order data flows through them:
``text`` (sentences from WordNet and the King James Bible) -> ``voices`` (the
synthesizers' voices and the speakers made from them) -> ``plan`` (who reads
what, TRAIN/TEST) -> ``flite`` / ``festival`` / ``espeak`` (audio with the
synthesizer's own phone and word timings) -> ``labels`` (TIMIT's 61 phones,
sample-exact segments) -> ``tree`` (the files on disk, checked) ->
``generate`` (all of it in parallel, resumable). ``data.synth_timit`` is the
command line.
"""
