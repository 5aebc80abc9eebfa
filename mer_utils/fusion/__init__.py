"""Late fusion of the audio and visual experts' predictions: join (:mod:`.join`), rules (:mod:`.rules`),
strategies tuned on validation only (:mod:`.strategies`, :mod:`.tuning`), tests and tables (:mod:`.significance`,
:mod:`.results`), and the ``mer fuse`` run folder (:mod:`.run`)."""
