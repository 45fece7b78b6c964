"""The command-line programs: argument parsing over `asr`, and nothing else.

Each module has ``main(argv=None)`` (returns the exit status, raises `UserError`) and
``cli()`` (the console script of ``[project.scripts]``: `main` through `asr.cli.run`, so
errors are one line and exit codes are conventional). ``train.py`` and ``decode.py`` at the
top of a checkout call the same functions.
"""
