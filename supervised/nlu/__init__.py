"""The learned slot-tagger NLU of the dialogue env: corpus, BiLSTM+CRF and per-word baseline, scoring, fitting.

Importing this package registers its tagger kinds with :func:`rlcourse.nlu.load_nlu` (the ``rlcourse.nlu``
entry point does the same in a process that never imports it).
"""

from rlcourse.supervised.nlu.corpus import Corpus, heldout_values, make_corpus
from rlcourse.supervised.nlu.crf import LinearChainCRF
from rlcourse.supervised.nlu.fitting import NluFitConfig, fit_tagger, load_tagger, register, save_tagger
from rlcourse.supervised.nlu.models import BiLstmCrfTagger, TaggerSpec, WordMlpTagger, build_tagger
from rlcourse.supervised.nlu.scoring import evaluate

register()

__all__ = [
    "BiLstmCrfTagger",
    "Corpus",
    "LinearChainCRF",
    "NluFitConfig",
    "TaggerSpec",
    "WordMlpTagger",
    "build_tagger",
    "evaluate",
    "fit_tagger",
    "heldout_values",
    "load_tagger",
    "make_corpus",
    "register",
    "save_tagger",
]
