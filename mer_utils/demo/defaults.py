"""The demo's window defaults, importable without numpy (the command line reads them for ``--help``)."""

DEFAULT_WINDOW_S = 3.0  # CREMA-D training clips last 1-5 s (median ~2.5 s): one window ~ one training clip
DEFAULT_HOP_S = 1.0
