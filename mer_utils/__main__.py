"""``python -m mer_utils`` is the same as the ``mer`` console script."""

from mer_utils.cli import entry

if __name__ == "__main__":
    raise SystemExit(entry())
