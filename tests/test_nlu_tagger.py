"""The slot taggers: the BiLSTM+CRF beats the per-word baseline where only context tells the slot ("leave Taipei" /
"arrive Taipei"), a saved tagger loads back with the same predictions, and bad files and settings are clear errors."""

from __future__ import annotations

import pytest
import torch

from rlcourse.checkpoint import CheckpointError, save_checkpoint
from rlcourse.nlu import UtteranceParser, load_nlu, save_nlu
from rlcourse.supervised.nlu import NluFitConfig, evaluate, fit_tagger, make_corpus, save_tagger
from rlcourse.supervised.nlu.scoring import predict

pytestmark = pytest.mark.usefixtures("one_torch_thread")
SMALL = dict(
    train_size=1500, eval_size=300, epochs=4, batch_size=32, hidden_dim=32, embedding_dim=32, learning_rate=0.01
)


@pytest.fixture(scope="module")
def taggers(one_torch_thread):
    """A BiLSTM+CRF and a per-word MLP, fitted on the same small corpus of the train domain."""
    return {
        model: fit_tagger("train", NluFitConfig(model=model, **SMALL), seed=0) for model in ("bilstm_crf", "word_mlp")
    }


def test_the_bilstm_crf_beats_the_per_word_baseline_where_context_decides(taggers):
    (_, lstm), (_, mlp) = taggers["bilstm_crf"], taggers["word_mlp"]
    assert lstm["ambiguous/slot_f1"] > 0.8, lstm
    assert mlp["ambiguous/slot_f1"] < 0.7, mlp  # one word in, so a shared value goes to one slot whatever surrounds it
    assert lstm["ambiguous/slot_f1"] > mlp["ambiguous/slot_f1"] + 0.2
    assert lstm["heldout_templates/slot_f1"] > mlp["heldout_templates/slot_f1"]


def test_taggers_fit_the_core_protocol_and_parse_on_fixed_shapes(taggers):
    model, _ = taggers["bilstm_crf"]
    assert isinstance(model, UtteranceParser)
    corpus = make_corpus("train", 16, seed=9)
    intent, tags, confidence = model.parse(corpus.tokens, corpus.lengths)
    assert intent.shape == (16,) and tags.shape == corpus.tokens.shape and confidence.shape == (16,)
    assert ((confidence > 0) & (confidence <= 1)).all()
    beyond = torch.arange(corpus.tokens.shape[1]) >= corpus.lengths[:, None]
    assert (tags[beyond] == 0).all()


@pytest.mark.parametrize("model_name", ["bilstm_crf", "word_mlp"])
def test_save_and_load_give_the_same_predictions(taggers, model_name, tmp_path):
    model, _ = taggers[model_name]
    path = save_tagger(model, tmp_path / "nlu.pt")
    loaded = load_nlu(path)  # through the core: the package registered its kinds when imported
    corpus = make_corpus("train", 200, seed=10, templates="heldout", typo=0.05)
    for expected, got in zip(predict(model, corpus), predict(loaded, corpus)):
        assert torch.equal(expected, got)
    assert evaluate(model, corpus) == evaluate(loaded, corpus)
    assert loaded.domain == "train" and list(loaded.tags) == list(model.tags)
    saved = torch.load(path, weights_only=True)  # plain tensors and data only
    assert saved["nlu"]["model"] == model_name


def test_bad_files_are_clear_errors(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        load_nlu(tmp_path / "missing.pt")
    save_checkpoint({"agent": "ppo"}, tmp_path / "agent.pt")
    with pytest.raises(ValueError, match="not a saved NLU"):
        load_nlu(tmp_path / "agent.pt")
    save_nlu(tmp_path / "odd.pt", "hmm_tagger", {"spec": {}})
    with pytest.raises(ValueError, match="'hmm_tagger', which no installed plug-in loads; .*known kinds: bilstm_crf"):
        load_nlu(tmp_path / "odd.pt")
    save_nlu(tmp_path / "broken.pt", "bilstm_crf", {"spec": {"vocabulary": ["<pad>"]}})
    with pytest.raises(CheckpointError, match="does not fit its model"):
        load_nlu(tmp_path / "broken.pt")
    (tmp_path / "text.pt").write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="not an rlcourse checkpoint"):
        load_nlu(tmp_path / "text.pt")


@pytest.mark.parametrize(
    ("change", "mentions"),
    [
        ({"model": "crf_only"}, "unknown tagger model 'crf_only'; choose one of bilstm_crf, word_mlp"),
        ({"epochs": 0}, "epochs must be > 0"),
        ({"typo": 1.5}, "typo must be below 1"),
        ({"train_values": "some"}, "train_values must be train or all"),
    ],
)
def test_bad_fit_settings_are_clear_errors(change, mentions):
    with pytest.raises(ValueError, match=mentions):
        NluFitConfig(**change)


def test_bad_corpus_requests_are_clear_errors():
    with pytest.raises(ValueError, match="unknown dialogue domain 'nope'"):
        make_corpus("nope", 10, seed=0)
    with pytest.raises(ValueError, match="unknown value split 'some'"):
        make_corpus("movie", 10, seed=0, values="some")
    with pytest.raises(ValueError, match="unknown template split 'new'"):
        make_corpus("movie", 10, seed=0, templates="new")
    with pytest.raises(ValueError, match="positive integer"):
        make_corpus("movie", 0, seed=0)
