"""Where the default model is: the small one the project ships (checkpoints/synth-small).

A source checkout has it at ``checkpoints/synth-small``. A wheel carries the same
files (``model.pt``, ``config.yaml``, ``README.md``) as package data at
``asr/_shipped/synth_small``: pyproject.toml maps that package onto the checkout's
folder, so git holds one copy. ``ASR_CHECKPOINT`` (a run folder or a ``.pt``
file) takes precedence over both, for a service that should run another model
without a flag.
"""

from __future__ import annotations

import os
from pathlib import Path

from asr.errors import UserError, file_error

ENVIRONMENT_VARIABLE = "ASR_CHECKPOINT"
NAME = "synth-small"

_HERE = Path(__file__).resolve().parent
# installed from a wheel (or any non-editable install): package data next to this module
PACKAGED = _HERE / "_shipped" / "synth_small"
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
