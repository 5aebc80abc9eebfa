"""Paper tables and figures from the run folders under ``outputs/`` (``mer report``: :mod:`.build`)."""
