"""The chatbot's words and data: the tokenizer's split, join and vocabulary rules, loading corpora (the installed
chatterbot-corpus and one's own files) with their errors, the leak-free seeded split, and the tensor layout."""

from __future__ import annotations

import json

import pytest
import torch

from rlcourse.envs.chatbot.corpus import (
    ChatCorpus,
    encode_pairs,
    load_conversations,
    observation_layout,
    reply_pairs,
    split_conversations,
)
from rlcourse.envs.chatbot.tokenizer import WordTokenizer

PAD, BOS, EOS, UNK = 0, 1, 2, 3
SPECIALS = ["<pad>", "<bos>", "<eos>", "<unk>"]


@pytest.fixture(scope="module")
def tiny():
    """Ids: hi=4, there=5, ','=6, '.'=7, "don't"=8, go=9."""
    return WordTokenizer([*SPECIALS, "hi", "there", ",", ".", "don't", "go"])


# ---------------------------------------------------------------------------------------------- tokenizer


def test_split_lowercases_keeps_inner_apostrophes_and_splits_punctuation():
    tok = WordTokenizer(SPECIALS)
    assert tok.split("Hi, I'm here! Don’t 'go' (now) 3.14") == [
        "hi", ",", "i'm", "here", "!", "don't", "'", "go", "'", "(", "now", ")", "3.14",
    ]  # fmt: skip
    assert tok.split("<unk>") == ["<", "unk", ">"]  # no text spells a special token


def test_encode_decode_round_trip_gives_the_normalised_text():
    text = "Hello, World! I'm fine (really) - don't worry."
    tok = WordTokenizer.build([text])
    ids = tok.encode(text)
    assert len(ids) == 13 and UNK not in ids and min(ids) >= 4
    assert tok.decode(ids) == "hello, world! i'm fine (really) - don't worry."
    assert tok.decode(tok.encode("hi , there .")) == "<unk>, <unk>."


def test_unseen_word_is_unk_and_shown_as_unk(tiny):
    assert tiny.encode("Hi there, zebra.") == [4, 5, 6, UNK, 7]
    assert tiny.decode([4, UNK, 7]) == "hi <unk>."


def test_decode_stops_at_eos_and_skips_pad_and_bos(tiny):
    assert tiny.decode([BOS, 4, PAD, 6, 5, EOS, 9, 9]) == "hi, there"
    assert tiny.decode(torch.tensor([PAD, PAD, BOS, 9, 7, EOS, PAD])) == "go."
    assert tiny.decode([BOS, 4, EOS, 9], skip_special=False) == "<bos> hi <eos> go"
    with pytest.raises(ValueError, match="outside the vocabulary"):
        tiny.decode([4, 10])


def test_build_orders_by_count_then_alphabetically_and_applies_min_count_and_max_size():
    texts = ["b d c", "b a", "d a b"]  # b:3, d:2 (seen first), a:2, c:1
    assert WordTokenizer.build(texts).words[4:] == ("b", "a", "d", "c")
    assert WordTokenizer.build(texts, min_count=2).words[4:] == ("b", "a", "d")
    assert WordTokenizer.build(texts, max_size=6).words == (*SPECIALS, "b", "a")
    with pytest.raises(ValueError, match="max_size"):
        WordTokenizer.build(texts, max_size=3)
    with pytest.raises(ValueError, match="min_count"):
        WordTokenizer.build(texts, min_count=0)


def test_to_dict_from_dict_round_trip_through_json(tiny):
    back = WordTokenizer.from_dict(json.loads(json.dumps(tiny.to_dict())))
    assert back == tiny and back.words == tiny.words and back.vocab_size == 10
    assert back.encode("hi, there.") == tiny.encode("hi, there.")


@pytest.mark.parametrize(
    ("words", "problem"),
    [
        ([*SPECIALS, "hi", "go", "hi"], "duplicate word 'hi' at ids 4 and 6"),
        (["<pad>", "<bos>", "<eos>", "hi"], r"lacks the special tokens \['<unk>'\]"),
        (["<bos>", "<pad>", "<eos>", "<unk>", "hi"], "misplaced"),
        ([*SPECIALS, "hi there"], "contains whitespace"),
        ([*SPECIALS, ""], "empty string"),
        ([*SPECIALS, 7], "not a str"),
        ([*SPECIALS, "Hello"], "not a single token"),
    ],
)
def test_bad_vocabularies_are_value_errors_naming_the_problem(words, problem):
    with pytest.raises(ValueError, match=problem):
        WordTokenizer(words)
    with pytest.raises(ValueError, match=problem):
        WordTokenizer.from_dict({**WordTokenizer(SPECIALS).to_dict(), "words": words})


def test_from_dict_rejects_a_foreign_description():
    with pytest.raises(ValueError, match="format"):
        WordTokenizer.from_dict({"words": SPECIALS})
    with pytest.raises(ValueError, match="'words' must be a list"):
        WordTokenizer.from_dict({**WordTokenizer(SPECIALS).to_dict(), "words": "abc"})


# ---------------------------------------------------------------------------------------------- pairs and tensors


def test_reply_pairs_of_a_three_utterance_conversation():
    conv = ("Hi.", "Hello there.", "How are you?")
    assert reply_pairs([conv]) == [("Hi.", "Hello there."), ("Hello there.", "How are you?")]
    assert reply_pairs([conv], context_turns=2) == [("Hi.", "Hello there."), ("Hi. Hello there.", "How are you?")]
    with pytest.raises(ValueError, match="context_turns"):
        reply_pairs([conv], context_turns=0)


def test_encode_pairs_pads_left_truncates_contexts_from_the_left_and_ends_replies_with_eos(tiny):
    pairs = [("hi", "go ."), ("hi there , go go", "hi there , go go")]
    contexts, replies = encode_pairs(pairs, tiny, context_len=3, reply_len=4)
    assert contexts.dtype == replies.dtype == torch.int64
    assert contexts.tolist() == [[PAD, PAD, 4], [6, 9, 9]]  # the LAST three tokens of a long context
    assert replies.tolist() == [[9, 7, EOS, PAD], [4, 5, 6, EOS]]  # the first reply_len - 1 tokens, then EOS
    with pytest.raises(ValueError, match="reply_len"):
        encode_pairs(pairs, tiny, context_len=3, reply_len=1)


def test_observation_layout_puts_bos_at_column_c(tiny):
    contexts, replies = encode_pairs([("hi there", "go")], tiny, context_len=3, reply_len=2)
    obs = observation_layout(contexts, replies)
    assert obs.shape == (1, 6) and obs.tolist() == [[PAD, 4, 5, BOS, 9, EOS]]
    with pytest.raises(ValueError, match="int64"):
        observation_layout(contexts.int(), replies)


# ---------------------------------------------------------------------------------------------- splitting


def tagged_corpus(count: int) -> list[tuple[str, ...]]:
    """Conversations whose every utterance names its conversation, with every third one repeated."""
    convs = [(f"c{i} hello", f"c{i} reply", f"c{i} again") for i in range(count)]
    return convs + convs[::3]


def conversation_tags(conversations) -> set[str]:
    return {context.split()[0] for context, _ in reply_pairs(conversations)} | {
        reply.split()[0] for _, reply in reply_pairs(conversations)
    }


def test_split_keeps_each_conversation_and_its_copies_in_one_split_and_is_seeded():
    corpus = tagged_corpus(50)
    train, valid, test = split_conversations(corpus, seed=3)
    tags = [conversation_tags(part) for part in (train, valid, test)]
    assert not (tags[0] & tags[1]) and not (tags[0] & tags[2]) and not (tags[1] & tags[2])
    assert sorted(train + valid + test) == sorted(corpus)
    assert (len(set(train)), len(set(valid)), len(set(test))) == (40, 5, 5)  # fractions count distinct ones
    assert split_conversations(corpus, seed=3) == (train, valid, test)
    assert split_conversations(corpus, seed=4) != (train, valid, test)


def test_split_of_three_conversations_leaves_no_split_empty_and_bad_fractions_are_errors():
    assert [len(p) for p in split_conversations(tagged_corpus(3)[:3])] == [1, 1, 1]
    with pytest.raises(ValueError, match="at least 3 distinct"):
        split_conversations(tagged_corpus(2))
    for fractions in [(0.5, 0.5), (0.8, 0.2, 0.0), (0.7, 0.2, 0.2), (1.2, -0.1, -0.1)]:
        with pytest.raises(ValueError, match="fractions"):
            split_conversations(tagged_corpus(10), fractions=fractions)


# ---------------------------------------------------------------------------------------------- loading


def test_installed_english_corpus_loads_and_builds():
    conversations = load_conversations()
    assert len(conversations) > 1500 and all(len(c) >= 2 and all(u.strip() for u in c) for c in conversations)
    corpus = ChatCorpus.build()
    assert corpus.tokenizer.vocab_size > 1000
    for contexts, replies in (corpus.train, corpus.valid, corpus.test):
        assert len(contexts) == len(replies) > 50
        assert contexts.shape[1] == 16 and replies.shape[1] == 16
        assert (replies == EOS).sum(1).eq(1).all()  # every reply has one EOS (reply_len 16 >= 2)
    assert corpus.unk_rate("train") == 0.0 and 0.0 < corpus.unk_rate("valid") < 0.5
    with pytest.raises(ValueError, match="available: .*english"):
        load_conversations(language="klingon")
    with pytest.raises(ValueError, match="reply_len"):
        ChatCorpus.build(reply_len=1)


def test_a_txt_corpus_and_a_yaml_folder_of_ones_own_load(tmp_path):
    txt = tmp_path / "chat.txt"
    txt.write_text("Hi\nHello!\n\n\nLonely line\n\nHow are you?\n  \nFine.\nGood.\n", encoding="utf-8")
    # a line of spaces counts as blank: it ends a conversation, and one-utterance conversations are dropped
    assert load_conversations(txt) == [("Hi", "Hello!"), ("Fine.", "Good.")]
    folder = tmp_path / "yaml"
    folder.mkdir()
    (folder / "b.yaml").write_text("conversations:\n- - Second\n  - 42\n  - true\n", encoding="utf-8")
    (folder / "a.yml").write_text(
        "categories: [test]\nconversations:\n- - First\n  - ''\n  - Reply\n- - Alone\n- A bare string\n",
        encoding="utf-8",
    )
    (folder / "notes.md").write_text("not a corpus", encoding="utf-8")
    # files in name order; blank utterances dropped; scalars kept as str(); short and bare-string ones dropped
    assert load_conversations(folder) == [("First", "Reply"), ("Second", "42", "True")]
    corpus = ChatCorpus.build(_write_txt(tmp_path, 12), context_len=4, reply_len=3)
    assert len(corpus.train[0]) == 10 and len(corpus.valid[0]) == len(corpus.test[0]) == 1


def _write_txt(folder, count: int):
    path = folder / "many.txt"
    path.write_text("\n\n".join(f"question {i}\nanswer {i}" for i in range(count)), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("name", "text", "problem"),
    [
        ("empty.yml", "", "empty.yml: the file is empty"),
        ("empty.txt", "\n\n", "empty.txt: empty corpus"),
        ("short.yml", "conversations:\n- - only one\n", "short.yml: empty corpus"),
        ("bad.yml", "conversations: [[unclosed\n", "bad.yml: malformed YAML"),
        ("list.yml", "- - a\n  - b\n", "list.yml: wrong structure"),
        ("dict.yml", "conversations:\n- - a\n  - {b: c}\n", "dict.yml: conversation 0: wrong structure"),
        ("corpus.json", "{}", r"corpus.json: unsupported suffix '.json'"),
    ],
)
def test_bad_files_are_value_errors_naming_the_file_and_problem(tmp_path, name, text, problem):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match=problem):
        load_conversations(path)


def test_missing_path_and_folder_without_yaml_are_value_errors(tmp_path):
    with pytest.raises(ValueError, match="nowhere.yml: no such file"):
        load_conversations(tmp_path / "nowhere.yml")
    with pytest.raises(ValueError, match="holds no .yml/.yaml files"):
        load_conversations(tmp_path)


def test_a_reply_becomes_a_context_and_a_context_a_reply_by_hand():
    from rlcourse.envs.chatbot.corpus import context_as_reply, reply_as_context

    replies = torch.tensor([[7, 8, 2, 0, 0], [4, 5, 6, 7, 8]])  # EOS=2, PAD=0; the second has no room for EOS
    assert reply_as_context(replies, 3).tolist() == [[0, 7, 8], [6, 7, 8]]  # the last words, right-aligned
    contexts = torch.tensor([[0, 0, 9, 10], [11, 12, 13, 14]])
    assert context_as_reply(contexts, 5).tolist() == [[9, 10, 2, 0, 0], [11, 12, 13, 14, 2]]
    assert context_as_reply(contexts, 3).tolist() == [[9, 10, 2], [11, 12, 13]]
