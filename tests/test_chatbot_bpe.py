"""The chatbot's byte-level BPE tokenizer (``tokenizer="bpe"``): its round trip, fixed specials and train-only
vocabulary, its description, the env contract and checkers on a BPE env, the plug-ins' tokenizer record, and the
errors of bad options. The word tokenizer's own tests are in tests/test_chatbot_corpus.py."""

from __future__ import annotations

import inspect
import json

import gymnasium as gym
import pytest
import test_env_contract as contract
import torch
from click.testing import CliRunner
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env
from test_env_checkers import _run_checker

import rlcourse
from rlcourse.app.cli import cli, main
from rlcourse.checkpoint import CheckpointError, load_checkpoint
from rlcourse.envs.chatbot.bpe import MIN_VOCAB_SIZE, BPETokenizer, clean
from rlcourse.envs.chatbot.corpus import load_conversations, split_conversations, unique_conversations
from rlcourse.envs.chatbot.tokenizer import WordTokenizer, split_text, tokenizer_from_dict
from rlcourse.supervised import load_plugin
from rlcourse.supervised.chat.language_model import ChatLanguageModel
from rlcourse.supervised.chat.preference import PreferenceRewardModel
from rlcourse.supervised.reward import ModelReward

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py

ENV_ID = "rlcourse/Chatbot-v0"
PAD, BOS, EOS, UNK = 0, 1, 2, 3
SPECIALS = ("<pad>", "<bos>", "<eos>", "<unk>")
#: A small BPE env: short layouts, 300 ids (the 260 of specials and bytes, and 40 merges).
BPE = dict(tokenizer="bpe", bpe_vocab_size=300, context_len=4, reply_len=5)
TEXTS = ["Hello there, how are you?", "I do not know what you mean.", "How are you? Fine, thank you."] * 3


@pytest.fixture(scope="module")
def small():
    return BPETokenizer.build(TEXTS, vocab_size=300)


# ---------------------------------------------------------------------------------------------- the tokenizer
@pytest.mark.parametrize(
    "text",
    [
        "Hello there, how are you?",
        "  Don’t  SHOUT “please”…  ",  # curly quotes, an ellipsis (NFKC: ...), runs of spaces
        "zyxwvut qq 3.14 café ☃",  # letters and characters no training text has
        "<unk> <eos> typed by a user",
    ],
)
def test_decode_of_encode_is_the_normalised_text(small, text):
    ids = small.encode(text)
    assert ids and min(ids) >= 4  # ordinary ids only: no special, no UNK
    assert small.decode(ids) == clean(text)
    assert split_text(clean(text)) == split_text(text)  # the word tokenizer's normalisation, nothing else
    assert clean("  Don’t  SHOUT “please”…  ") == 'don\'t shout "please"...'


def test_the_special_ids_are_fixed_and_decode_treats_them_like_the_word_tokenizer(small):
    assert small.words[:4] == SPECIALS == WordTokenizer.SPECIALS
    assert (small.PAD, small.BOS, small.EOS, small.UNK) == (PAD, BOS, EOS, UNK)
    hello, there = small.encode("hello"), small.encode("there")
    assert len(hello) == len(there) == 1  # merged whole: both are frequent in TEXTS
    assert small.decode([BOS, *hello, PAD, UNK, *there, EOS, *hello]) == "hello <unk> there"
    assert small.decode(torch.tensor([BOS, *hello, EOS, *there]), skip_special=False) == "<bos> hello <eos> there"
    with pytest.raises(ValueError, match="outside the vocabulary"):
        small.decode([small.vocab_size])


def test_the_vocabulary_is_the_bytes_then_the_merges_and_its_size_is_checked(small):
    assert small.vocab_size == 300 and len(small.words) == len(set(small.words)) == 300
    assert "Ġhello" in small.words  # a word with the space before it
    for bad in (3, MIN_VOCAB_SIZE - 1, 2.5, True):
        with pytest.raises(ValueError, match="vocab_size must be an int >= 260"):
            BPETokenizer.build(TEXTS, vocab_size=bad)


def test_the_same_texts_give_the_same_tokenizer_and_others_another(small):
    again = BPETokenizer.build(TEXTS, vocab_size=300)
    assert again == small and again.signature == small.signature and hash(again) == hash(small)
    other = BPETokenizer.build([*TEXTS, "zebras zebras zebras"], vocab_size=300)
    assert other != small and other.signature != small.signature
    assert small.signature.startswith("bpe/300/") and small != WordTokenizer(SPECIALS)


def test_to_dict_from_dict_round_trip_through_json(small):
    data = json.loads(json.dumps(small.to_dict()))
    for back in (BPETokenizer.from_dict(data), tokenizer_from_dict(data)):
        assert back == small and back.words == small.words
        assert back.encode("how are you, zebra?") == small.encode("how are you, zebra?")
    word = WordTokenizer([*SPECIALS, "hi"])
    assert tokenizer_from_dict(word.to_dict()) == word


def test_a_foreign_or_damaged_description_is_a_value_error(small):
    data = small.to_dict()
    with pytest.raises(ValueError, match="format"):
        BPETokenizer.from_dict({**data, "format": "something"})
    with pytest.raises(ValueError, match="version"):
        BPETokenizer.from_dict({**data, "version": 99})
    with pytest.raises(ValueError, match="not a tokenizers JSON"):
        BPETokenizer.from_dict({**data, "tokenizer": "{broken"})
    spec = json.loads(data["tokenizer"])
    with pytest.raises(ValueError, match="pre_tokenizer is 'Whitespace'"):
        BPETokenizer(json.dumps({**spec, "pre_tokenizer": {"type": "Whitespace"}}))
    with pytest.raises(ValueError, match="not a chatbot tokenizer description"):
        tokenizer_from_dict({"format": "something"})


# ---------------------------------------------------------------------------------------------- the corpus
@pytest.fixture(scope="module")
def bpe_env():
    return rlcourse.make_vec(ENV_ID, 2, "cpu", **BPE)


def test_the_bpe_is_learnt_from_the_train_split_only_and_spells_held_out_words(bpe_env):
    train, valid, test = split_conversations(unique_conversations(load_conversations()))
    assert bpe_env.unwrapped.tokenizer == BPETokenizer.build([u for c in train for u in c], vocab_size=300)
    train_words = set(WordTokenizer.build(u for c in train for u in c).words)
    unseen = sorted({w for c in test for u in c for w in split_text(u) if w.isalpha()} - train_words)
    assert len(unseen) > 20  # the word tokenizer maps each of these to UNK
    tokenizer = bpe_env.unwrapped.tokenizer
    for word in unseen[:20]:
        ids = tokenizer.encode(word)
        assert len(ids) > 1 and UNK not in ids and tokenizer.decode(ids) == word
    corpus = bpe_env.unwrapped.corpus
    assert corpus.unk_rate("valid") == corpus.unk_rate("test") == 0.0


# ---------------------------------------------------------------------------------------------- the env
def _contract_tests():
    """The shared contract tests of tests/test_env_contract.py that take an env id and build the env from it."""
    return [
        test
        for name, test in inspect.getmembers(contract, inspect.isfunction)
        if name.startswith("test_")
        and "env_id" in inspect.signature(test).parameters
        and "make" in inspect.getsource(test)
    ]


@pytest.mark.parametrize("test", _contract_tests(), ids=lambda test: test.__name__)
def test_a_bpe_env_passes_the_env_contract(test, monkeypatch):
    """The word env passes these through their parametrisation over every registered env; here, with BPE options."""
    make, gym_make = contract.make, gym.make
    monkeypatch.setattr(contract, "make", lambda env_id, num_envs=4, **kwargs: make(env_id, num_envs, **BPE, **kwargs))
    monkeypatch.setattr(contract.gym, "make", lambda env_id, **kwargs: gym_make(env_id, **BPE, **kwargs))
    parameters = inspect.signature(test).parameters
    arguments = {"env_id": ENV_ID, "device": "cpu", "monkeypatch": monkeypatch, "bad": 0}
    test(**{name: arguments[name] for name in parameters})


def test_gymnasium_and_sb3_checkers_pass_on_a_bpe_env():
    _run_checker(gym_check_env, gym.make(ENV_ID, **BPE).unwrapped)
    _run_checker(lambda env: sb3_check_env(env, warn=True), gym.make(ENV_ID, **BPE))


def test_a_bpe_env_records_its_options_and_reads_dull_replies_in_bpe(bpe_env):
    env = bpe_env.unwrapped
    assert env.options()["tokenizer"] == "bpe" and env.options()["bpe_vocab_size"] == 300
    assert env.single_action_space.n == 300 and env.action_names == env.tokenizer.words
    assert env.tokenizer.decode(env.dull_replies[0].tolist()) in {clean(r) for r in rlcourse.envs.chatbot.DULL_REPLIES}
    default = rlcourse.make_vec(ENV_ID, 1, "cpu", tokenizer="bpe", context_len=4, reply_len=5).unwrapped
    assert default.options()["bpe_vocab_size"] == 2000 == default.tokenizer.vocab_size  # the default, recorded
    word = rlcourse.make_vec(ENV_ID, 1, "cpu", context_len=4, reply_len=5).unwrapped
    assert isinstance(word.tokenizer, WordTokenizer) and word.options()["tokenizer"] == "word"


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"tokenizer": "xyz"}, "tokenizer must be one of 'word', 'bpe', got 'xyz'"),
        ({"tokenizer": ["bpe"]}, "tokenizer must be one of"),
        ({"tokenizer": "bpe", "bpe_vocab_size": 3}, "bpe_vocab_size must be an int >= 260"),
        ({"tokenizer": "bpe", "bpe_vocab_size": "big"}, "bpe_vocab_size must be an int"),
        ({"bpe_vocab_size": 500}, "bpe_vocab_size is an option of tokenizer='bpe'"),
        ({"tokenizer": "bpe", "min_count": 5}, "min_count and max_vocab are options of tokenizer='word'"),
    ],
)
def test_bad_tokenizer_options_are_value_errors_naming_the_option(options, problem):
    with pytest.raises(ValueError, match=problem):
        rlcourse.make_vec(ENV_ID, 1, "cpu", **options)


# ---------------------------------------------------------------------------------------------- plug-ins
@pytest.fixture(scope="module")
def same_size_envs():
    """A word env and a BPE env whose vocabularies have one size, so only the tokenizer record tells them apart."""
    word = rlcourse.make_vec(ENV_ID, 2, "cpu", context_len=4, reply_len=5, min_count=3)
    size = int(word.single_action_space.n)
    bpe = rlcourse.make_vec(ENV_ID, 2, "cpu", context_len=4, reply_len=5, tokenizer="bpe", bpe_vocab_size=size)
    assert bpe.single_observation_space == word.single_observation_space
    assert bpe.single_action_space == word.single_action_space
    return word, bpe


@pytest.mark.parametrize("plugin", [ChatLanguageModel, PreferenceRewardModel])
def test_a_plugin_fitted_on_bpe_is_refused_on_a_word_env_even_from_its_file(same_size_envs, plugin, tmp_path):
    word, bpe = same_size_envs
    model = plugin.for_env(bpe, {"embed_dim": 8, "hidden_dim": 8})
    assert model.config.tokenizer == bpe.unwrapped.tokenizer.signature
    ModelReward(bpe, model)  # its own env takes it
    loaded = load_plugin(model.save(tmp_path / "model.pt"))
    assert loaded.config.tokenizer == model.config.tokenizer
    for candidate in (model, loaded):
        with pytest.raises(
            ValueError, match=rf"{plugin.__name__} was fitted on the tokenizer 'bpe' .*env reads 'word'"
        ):
            ModelReward(word, candidate)
    ModelReward(word, plugin(word.single_observation_space, word.single_action_space))  # nothing recorded: unchecked
    ModelReward(word, plugin.for_env(word))


def test_a_word_model_is_refused_on_a_word_env_of_another_vocabulary_of_the_same_size(tmp_path):
    """Two corpora of one's own, each conversation using all four of its words: vocabularies of 8 ids either way."""
    envs = []
    for words in (("red", "green", "blue", "gold"), ("cat", "dog", "owl", "elk")):
        orders = [(a, b, c, d) for a in words for b in words for c in words for d in words if len({a, b, c, d}) == 4]
        path = tmp_path / f"{words[0]}.txt"
        path.write_text("\n\n".join(f"{a} {b}\n{c} {d}" for a, b, c, d in orders[:12]) + "\n", encoding="utf-8")
        envs.append(rlcourse.make_vec(ENV_ID, 1, "cpu", corpus=str(path), context_len=2, reply_len=3))
    colours, animals = envs
    assert colours.single_action_space == animals.single_action_space == gym.spaces.Discrete(8)
    with pytest.raises(
        ValueError, match=r"fitted on the tokenizer 'word' \(8 tokens, digest \w+\), but the env reads 'word'"
    ):
        ModelReward(animals, ChatLanguageModel.for_env(colours, {"embed_dim": 8, "hidden_dim": 8}))


def test_a_language_model_fitted_on_bpe_does_not_warm_start_an_agent_on_the_default_word_env(tmp_path):
    bpe = rlcourse.make_vec(ENV_ID, 1, "cpu", tokenizer="bpe", context_len=4, reply_len=4)
    path = ChatLanguageModel.for_env(bpe, {"embed_dim": 16, "hidden_dim": 32}).save(tmp_path / "lm.pt")
    from rlcourse.agents import PPO

    agent = PPO(ENV_ID, num_envs=2, device="cpu", seed=0, preset=None, n_steps=8, batch_size=8, n_epochs=1,
                net_arch=(16, 32), policy_network="token_gru", env_kwargs=dict(context_len=4, reply_len=4))  # fmt: skip
    with pytest.raises(CheckpointError, match="fitted on the tokenizer 'bpe' .*env reads 'word'"):  # the cause, named
        agent.init_from(path)


def test_fit_chat_lm_fits_on_bpe_and_records_the_tokenizer(tmp_path, capsys):
    args = ["fit", "chat-lm", "--tokenizer", "bpe", "--bpe-vocab-size", "300", "--context-len", "4", "--reply-len", "4",
            "--epochs", "1", "--hp", "embed_dim=8", "--hp", "hidden_dim=8", "--runs-root", str(tmp_path), "--name", "b"]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, (result.output, result.exception)
    assert "--env-opt tokenizer=bpe --env-opt bpe_vocab_size=300" in result.output
    payload = load_checkpoint(tmp_path / "chat_lm" / "gru" / "b" / "lm.pt")
    env = rlcourse.make_vec(ENV_ID, 1, "cpu", **{**BPE, "reply_len": 4})
    assert payload["config"]["tokenizer"] == env.unwrapped.tokenizer.signature
    capsys.readouterr()
    assert main(["fit", "chat-lm", "--tokenizer", "bpe", "--bpe-vocab-size", "3", "--runs-root", str(tmp_path)]) == 2
    assert "bpe_vocab_size must be an int >= 260" in capsys.readouterr().err
    assert main(["fit", "chat-lm", "--tokenizer", "xyz"]) == 2
    assert "'xyz' is not one of 'word', 'bpe'" in capsys.readouterr().err
