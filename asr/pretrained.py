"""Where the default model is: the English character model the project ships
(checkpoints/english: words out, with its word LM), for audio when no checkpoint is named.

A source checkout has it at ``checkpoints/english``. A wheel carries the same files
(``model.pt``, ``config.yaml``, ``README.md``, ``lm.arpa.gz``, ``decoding.yaml``) as
package data at ``asr/_shipped/english``: pyproject.toml maps that package onto the
checkout's folder, so git holds one copy. The TIMIT-style phone model stays at
``checkpoints/synth-small`` (name it with --checkpoint). ``ASR_CHECKPOINT`` (a run folder or a ``.pt``
file) takes precedence over both, for a service that should run another model
without a flag.
"""

from __future__ import annotations

import os
from pathlib import Path

from asr.errors import UserError, file_error

ENVIRONMENT_VARIABLE = "ASR_CHECKPOINT"
NAME = "english"

_HERE = Path(__file__).resolve().parent
# installed from a wheel (or any non-editable install): package data next to this module
PACKAGED = _HERE / "_shipped" / "english"
# a source checkout, or an editable install of one
CHECKOUT = _HERE.parent / "checkpoints" / NAME


def default_checkpoint() -> Path:
    """The checkpoint to use when none is named: $ASR_CHECKPOINT if set, else the shipped model.

    Raises UserError when $ASR_CHECKPOINT names nothing, or when neither the wheel's
    copy nor the checkout's folder holds the shipped model.
    """
    chosen = os.environ.get(ENVIRONMENT_VARIABLE, "").strip()
    if chosen:
        path = Path(chosen).expanduser()
        if not path.exists():
            raise file_error(path, f"${ENVIRONMENT_VARIABLE} names a checkpoint that does not exist",
                             f"Point it at a run folder or a .pt file, or unset it to use the shipped {NAME}")
        return path
    for folder in (PACKAGED, CHECKOUT):
        if (folder / "model.pt").is_file():
            return folder
    raise UserError(
        f"the default model ({NAME}) is missing: looked for {PACKAGED / 'model.pt'} (an installed wheel) "
        f"and {CHECKOUT / 'model.pt'} (a source checkout). Reinstall the package (pip install .), or name "
        f"a checkpoint with --checkpoint or ${ENVIRONMENT_VARIABLE}"
    )
