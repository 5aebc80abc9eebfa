"""The data layer: one reader per corpus (CREMA-D, RAVDESS, IEMOCAP, any CSV), the manifest with media
health, the synthetic default corpus, and ``mer download`` (see :mod:`mer_utils.data.manifest`)."""
