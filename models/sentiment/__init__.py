"""Patient sentiment: text checks, a lexicon baseline (VADER), a TF-IDF classifier trained on weak labels
from survey ratings, the choice between them by macro-F1, and scoring."""
