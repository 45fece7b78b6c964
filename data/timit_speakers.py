"""TIMIT's standard speaker lists: the core test set and the dev set of the usual recipe.

Core test: the 24 speakers (2 men and 1 woman from each dialect region) that
TIMIT's documentation names (Garofolo et al. 1993, "DARPA TIMIT", section on
the core test set); Graves et al. (2013) and Kaldi's timit recipe score on
their 192 SI/SX utterances. Dev: the 50 further test-set speakers of Kaldi's
``egs/timit/s5/conf/dev_spk.list`` (400 utterances), used for early stopping.
The remaining 94 test speakers are used by neither.

A synthesized TIMIT-layout tree (``data.synth_timit``) uses none of these IDs,
so a reader can tell it from the real corpus.
"""

from __future__ import annotations

CORE_TEST_SPEAKERS: tuple[str, ...] = (
    "MDAB0", "MWBT0", "FELC0", "MTAS1", "MWEW0", "FPAS0", "MJMP0", "MLNT0",
    "FPKT0", "MLLL0", "MTLS0", "FJLM0", "MBPM0", "MKLT0", "FNLP0", "MCMJ0",
    "MJDH0", "FMGD0", "MGRT0", "MNJM0", "FDHC0", "MJLN0", "MPAM0", "FMLD0",
)

DEV_SPEAKERS: tuple[str, ...] = (
    "FAKS0", "MMDB1", "MBDG0", "FEDW0", "MTDT0", "FSEM0", "MDVC0", "MRJM4",
    "MJSW0", "MTEB0", "FDAC1", "MMDM2", "MBWM0", "MGJF0", "MTHC0", "MBNS0",
    "MERS0", "FCAL1", "MREB0", "MJFC0", "FJEM0", "MPDF0", "MCSH0", "MGLB0",
    "MWJG0", "MMJR0", "FMAH0", "MMWH0", "FGJD0", "MRJR0", "MGWT0", "FCMH0",
    "FADG0", "MRTK0", "FNMR0", "MDLS0", "FDRW0", "FJSJ0", "FJMG0", "FMML0",
    "MJAR0", "FKMS0", "FDMS0", "MTAA0", "FREW0", "MDLF0", "MRCS0", "MAJC0",
    "MROA0", "MRWS1",
)

STANDARD_SPEAKERS: frozenset[str] = frozenset(CORE_TEST_SPEAKERS + DEV_SPEAKERS)

assert len(CORE_TEST_SPEAKERS) == 24 and len(DEV_SPEAKERS) == 50
assert len(STANDARD_SPEAKERS) == 74, "the core test and dev lists overlap"
