"""The slot taggers: the BiLSTM+CRF beats the per-word baseline where only context tells the slot ("leave Taipei" /
"arrive Taipei") and places values it never heard, spelling features give an unseen word a vector of its own, a saved
tagger loads back with the same predictions, and bad files and settings are clear errors."""

from __future__ import annotations

import pytest
import torch

from rlcourse.checkpoint import CheckpointError, save_checkpoint
from rlcourse.envs.dialogue import load_domain
from rlcourse.envs.dialogue.lexicon import Lexicon
from rlcourse.envs.dialogue.speech import INTENTS
from rlcourse.nlu import UtteranceParser, load_nlu, save_nlu
from rlcourse.supervised.nlu import (
    NluFitConfig,
    TaggerSpec,
    build_tagger,
    evaluate,
    fit_tagger,
    heldout_values,
    make_corpus,
    save_tagger,
)
from rlcourse.supervised.nlu.models import spell
from rlcourse.supervised.nlu.scoring import predict

pytestmark = pytest.mark.usefixtures("one_torch_thread")
SMALL = dict(
    train_size=1500, eval_size=300, epochs=4, batch_size=32, hidden_dim=32, embedding_dim=32, learning_rate=0.01
)


@pytest.fixture(scope="module")
def taggers(one_torch_thread):
    """A BiLSTM+CRF and a per-word MLP, fitted on the same small corpus of the train domain, and a smaller BiLSTM+CRF
    with spelling features."""
    fitted = {
        model: fit_tagger("train", NluFitConfig(model=model, **SMALL), seed=0) for model in ("bilstm_crf", "word_mlp")
    }
    chars = NluFitConfig(**{**SMALL, "train_size": 1000, "epochs": 3, "char_filters": 16, "char_dim": 8})
    fitted["chars"] = fit_tagger("train", chars, seed=0)
    return fitted


def test_the_bilstm_crf_beats_the_per_word_baseline_where_context_decides(taggers):
    (_, lstm), (_, mlp) = taggers["bilstm_crf"], taggers["word_mlp"]
    assert lstm["ambiguous/slot_f1"] > 0.8, lstm
    assert mlp["ambiguous/slot_f1"] < 0.7, mlp  # one word in, so a shared value goes to one slot whatever surrounds it
    assert lstm["ambiguous/slot_f1"] > mlp["ambiguous/slot_f1"] + 0.2
    assert lstm["heldout_templates/slot_f1"] > mlp["heldout_templates/slot_f1"]


def test_the_bilstm_crf_places_values_it_never_heard_by_their_context(taggers):
    (_, mlp) = taggers["word_mlp"]
    held = heldout_values(load_domain("train"))
    assert "stansted" in held["departure"] and "stansted" in held["destination"]  # a shared value: out of both
    stansted = Lexicon(load_domain("train")).word_id["stansted"]
    for name, better_than in (("bilstm_crf", 0.9), ("chars", 0.8)):
        model, scores = taggers[name]
        assert model.features.word_map[stansted] == model.features.unk  # training never said it
        assert scores["heldout_values/slot_f1"] > better_than, (name, scores)
    assert mlp["heldout_values/slot_f1"] < 0.6, mlp  # an unheard word is <unk> to it, whatever surrounds it


def test_spelling_is_the_words_characters_between_marks():
    spelling = spell(("<pad>", "<unk>", "ab", "b?a", "c"), alphabet="ab")
    # 0 pads, 1 is a character outside the alphabet, 2 and 3 mark a word's begin and end, the alphabet starts at 4
    assert spelling.tolist() == [[0] * 5, [0] * 5, [2, 4, 5, 3, 0], [2, 5, 1, 4, 3], [2, 1, 3, 0, 0]]


def test_spelling_features_give_an_unseen_word_a_vector_of_its_own():
    lexicon = Lexicon(load_domain("train"))
    vocabulary, ids = lexicon.vocabulary, lexicon.word_id
    known = torch.ones(len(vocabulary), dtype=torch.bool)
    unseen = ["stansted", "stevenage", "11:00"]  # words training never said, made of characters it did
    known[[ids[w] for w in unseen]] = False
    assert set("".join(unseen)) <= {c for w, k in zip(vocabulary, known.tolist()) if k for c in w}
    tokens = torch.tensor([[ids[w] for w in unseen] + [ids["<unk>"]]])
    torch.manual_seed(0)
    plain = build_tagger(TaggerSpec(vocabulary, lexicon.tags, INTENTS, "train"), known)
    spelt = build_tagger(TaggerSpec(vocabulary, lexicon.tags, INTENTS, "train", char_filters=8), known)
    bare = plain.features(tokens)[0]
    assert torch.equal(bare[0], bare[1])  # without spelling, two unheard cities are the same input
    assert all(torch.equal(bare[i, :48], bare[3, :48]) for i in range(3))  # each word embedding is <unk>'s
    features = spelt.features(tokens)[0]
    assert all(torch.equal(features[i, :48], features[3, :48]) for i in range(3))  # still <unk>'s word embedding
    spelling = features[:, -8:]
    assert (spelling[:3].abs().sum(1) > 0).all() and torch.equal(spelling[3], torch.zeros(8))  # <unk>: no spelling
    assert not torch.allclose(spelling[0], spelling[1]) and not torch.allclose(spelling[0], spelling[2])
    # spelling dropout reads a word as a typo does: no spelling
    dropped = spelt.features(
        tokens, torch.ones_like(tokens, dtype=torch.bool), torch.ones_like(tokens, dtype=torch.bool)
    )
    assert torch.equal(dropped[0, :, -8:], torch.zeros(4, 8))


def test_taggers_fit_the_core_protocol_and_parse_on_fixed_shapes(taggers):
    model, _ = taggers["bilstm_crf"]
    assert isinstance(model, UtteranceParser)
    corpus = make_corpus("train", 16, seed=9)
    intent, tags, confidence = model.parse(corpus.tokens, corpus.lengths)
    assert intent.shape == (16,) and tags.shape == corpus.tokens.shape and confidence.shape == (16,)
    assert ((confidence > 0) & (confidence <= 1)).all()
    beyond = torch.arange(corpus.tokens.shape[1]) >= corpus.lengths[:, None]
    assert (tags[beyond] == 0).all()


@pytest.mark.parametrize("model_name", ["bilstm_crf", "word_mlp", "chars"])
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
    assert saved["nlu"]["model"] == model.spec.model
    assert saved["nlu"]["spec"]["char_filters"] == (16 if model_name == "chars" else 0)


def test_a_tagger_saved_before_spelling_features_loads_as_one_without(taggers, tmp_path):
    model, _ = taggers["bilstm_crf"]
    payload = torch.load(save_tagger(model, tmp_path / "new.pt"), weights_only=True)["nlu"]
    spec = {k: v for k, v in payload["spec"].items() if k not in ("char_dim", "char_filters", "alphabet")}
    save_nlu(tmp_path / "old.pt", "bilstm_crf", {**payload, "spec": spec})
    loaded = load_nlu(tmp_path / "old.pt")
    corpus = make_corpus("train", 100, seed=11)
    assert loaded.spec.char_filters == 0 and torch.equal(predict(model, corpus)[1], predict(loaded, corpus)[1])


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
        ({"char_filters": -1}, "char_filters must be >= 0"),
        ({"spelling_dropout": 1.5}, "spelling_dropout must be at most 1"),
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
