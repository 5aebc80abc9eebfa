"""CREMA-D vocabulary: label order, sentence codes, intensity codes.

The label order below is the contract of every predictions CSV
(``p_ANG … p_SAD``) and of every checkpoint; it is alphabetical, which is also
the order HiCMAE's index files use.
"""

EMOTIONS = ("ANG", "DIS", "FEA", "HAP", "NEU", "SAD")
PROB_COLUMNS = tuple(f"p_{e}" for e in EMOTIONS)

# The crowd's vote letters in processedResults/ (A D F H N S).
VOTE_LETTER_TO_EMOTION = {"A": "ANG", "D": "DIS", "F": "FEA", "H": "HAP", "N": "NEU", "S": "SAD"}

SENTENCES = {
    "IEO": "It's eleven o'clock",
    "TIE": "That is exactly what happened",
    "IOM": "I'm on my way to the meeting",
    "IWW": "I wonder what this is about",
    "TAI": "The airplane is almost full",
    "MTI": "Maybe tomorrow it will be cold",
    "IWL": "I would like a new alarm clock",
    "ITH": "I think I have a doctor's appointment",
    "DFA": "Don't forget a jacket",
    "ITS": "I think I've seen this before",
    "TSI": "The surface is slick",
    "WSI": "We'll stop in a couple of minutes",
}
INTENSITIES = {"LO": "low", "MD": "medium", "HI": "high", "XX": "unspecified"}

# The official corpus, for the "is my copy complete?" check.
CREMAD_N_CLIPS = 7442
CREMAD_N_ACTORS = 91
