"""A TIMIT-layout corpus spoken by Debian's speech synthesizers (flite, festival, espeak-ng).

Modules, in the order data flows through them:
``text`` (sentences from WordNet, the King James Bible, GCIDE's quotations and
The Devil's Dictionary) -> ``voices`` (the synthesizers' voices, the speakers
made from them, the voices held out) -> ``plan`` (who reads what, TRAIN/TEST)
-> ``flite`` / ``festival`` / ``espeak`` (audio with the synthesizer's
own phone and word timings, as a ``synthesis.Synthesis``) -> ``render`` and
``labels`` (16 kHz audio, TIMIT's 61 phones in sample-exact segments) ->
``tree`` (the files on disk, checked) ->
``generate`` (all of it in parallel, resumable). ``data.synth_timit`` is the
command line.
"""
