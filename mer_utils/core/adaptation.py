"""How a test clip was scored: alone (``"none"``, as published results and the demo are), or with statistics of
other unlabelled test clips (:data:`WHAT_IT_USES`); only numbers scored alike are compared."""

from __future__ import annotations

from mer_utils.core.config import one_of

ADAPTATIONS = ("none", "speaker", "balanced")
DEFAULT_ADAPTATION = "none"
# What each mode uses at test time: the report's footnotes and the model card say it in these words.
WHAT_IT_USES = {
    "none": "each test clip is scored alone, with no statistics of any other clip (as published "
            "CREMA-D results and the demo's one recording are scored)",
    "speaker": "each speaker's features are z-scored with that speaker's unlabelled clips, "
               "the test speakers' own test clips included (needs speaker ids and many clips per test speaker)",
    "balanced": "speaker z-scoring, then a z-score within each "
                "(speaker, sentence) group, then each speaker's predictions rescaled to the training class prior "
                "(needs speaker and sentence ids and every test speaker recorded in every emotion alike)",
}
SHORT_NAMES = {"none": "single clip", "speaker": "adapted: speaker", "balanced": "adapted: speaker+sentence+prior"}


def check_adaptation(name: str) -> str:
    """``name`` if it is a known mode, else a ``ValueError`` that lists them.

    >>> check_adaptation("speaker")
    'speaker'
    """
    return one_of(name, ADAPTATIONS, "adaptation")


def adaptation_of(record: dict) -> str:
    """The mode a run's ``metrics.json`` (or an index entry) was scored in; older files say it in their folds'
    normalisation settings.

    >>> adaptation_of({"adaptation": "speaker"}), adaptation_of({})
    ('speaker', 'none')
    >>> adaptation_of({"folds": [{"speaker_norm": {"mode": "meanstd"}, "sentence_norm": True, "balance": True}]})
    'balanced'
    """
    if record.get("adaptation"):
        return str(record["adaptation"])
    for fold in record.get("folds") or []:
        if isinstance(fold, dict) and fold.get("speaker_norm"):
            return "balanced" if fold.get("balance") and fold.get("sentence_norm") else "speaker"
    return DEFAULT_ADAPTATION


def pointer_key(protocol: str, adaptation: str = DEFAULT_ADAPTATION) -> str:
    """The name of a run's ``latest_<key>`` pointer and checkpoint-index protocol slot: adapted runs
    never replace the single-clip run of a protocol.

    >>> pointer_key("speaker"), pointer_key("speaker", "balanced")
    ('speaker', 'speaker_adapt-balanced')
    """
    check_adaptation(adaptation)
    return protocol if adaptation == DEFAULT_ADAPTATION else f"{protocol}_adapt-{adaptation}"


def check_same_scoring(records: dict[str, dict], *, what: str) -> str:
    """The one mode every record (``{name: metrics}``) was scored in, or a ``ValueError`` naming each."""
    modes = {name: adaptation_of(record) for name, record in records.items()}
    if len(set(modes.values())) > 1:
        listed = "; ".join(f"{name}: {SHORT_NAMES[mode]}" for name, mode in modes.items())
        raise ValueError(f"{what}: these runs were scored differently ({listed}); a clip scored alone and one "
                         "scored with other test clips' statistics are not comparable. Re-run one of them with "
                         f"the other's --adapt (the default is {DEFAULT_ADAPTATION}: each clip alone).")
    return next(iter(modes.values()), DEFAULT_ADAPTATION)
