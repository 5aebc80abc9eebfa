"""Subcommand groups of the ``mer`` command line (see :mod:`mer_utils.cli`)."""
