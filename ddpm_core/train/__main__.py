"""``python -m ddpm_core.train``: train a DDPM from the command line (:mod:`ddpm_core.train.cli`)."""

from .cli import build_parser, main

try:
    main()
except ValueError as err:  # a bad flag or an unusable run folder: a message, not a traceback
    build_parser().error(str(err))
