"""The chatbot's conversations: loading, splitting by conversation, and encoding (context, reply) pairs as tensors.

**Sources.** By default the English conversations of the installed ``chatterbot-corpus`` package (BSD), read
with :mod:`importlib.resources`, never downloaded. Its format, which a user's own files may use too, is one
YAML mapping per file, ``{"categories": [...], "conversations": [[utterance, utterance, ...], ...]}``.
A plain ``.txt`` file also works: one utterance per line, a blank line between conversations.

**What is kept.** Utterances are stripped, and blank ones are dropped. A scalar utterance that YAML did not
read as a string (``- 1984`` is an int, ``- yes`` is ``True``, a date is a ``date``) is kept as its ``str()``,
so ``yes`` reads ``"True"``; a mapping or list as an utterance is an error. A conversation written as a bare
string instead of a list counts as one utterance: chatterbot-corpus 1.3.3's English ``trivia.yml`` has one,
where a missing dash folds a question and its answer into one string. Conversations left with fewer than
two utterances are dropped, since they hold no reply.

**Duplicates.** The English corpus repeats conversations (``tech_support.yml`` says "My printer is not
printing." 121 times): 2,025 conversations, 898 distinct. :func:`split_conversations` keeps identical
conversations in one split, so no copy of a held-out conversation is trained on, and
:meth:`ChatCorpus.build` keeps one copy of each, so the env's contexts are not half tech support.

**Tensors** (the shared spec's layout): contexts ``[N, C]`` left-padded with PAD, keeping a long context's
last ``C`` tokens; replies ``[N, R]``: up to ``R - 1`` reply tokens, then EOS, then PAD.
:func:`observation_layout` puts them either side of a BOS column, which is the env's observation.
"""

from __future__ import annotations

import datetime
import functools
import importlib.resources
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from rlcourse.envs.chatbot.tokenizer import ChatTokenizer, WordTokenizer, check_tokenizer_name

Conversation = tuple[str, ...]
YAML_SUFFIXES = (".yml", ".yaml")
SPLITS = ("train", "valid", "test")


class CorpusError(ValueError):
    """A corpus that cannot be used; the message names the file and the problem."""


# ---------------------------------------------------------------------------------------------- loading


def available_languages() -> list[str]:
    """The languages of the installed chatterbot-corpus package (its ``data/<language>/`` folders)."""
    data = importlib.resources.files("chatterbot_corpus") / "data"
    return sorted(entry.name for entry in data.iterdir() if entry.is_dir() and not entry.name.startswith("_"))


@functools.cache
def _installed_conversations(language: str) -> tuple[Conversation, ...]:
    """Every YAML file of the installed package's ``data/<language>/``, in file-name order (cached: the env
    builds its corpus on construction)."""
    languages = available_languages()
    if language not in languages:
        raise ValueError(f"unknown chatterbot-corpus language {language!r}; available: {', '.join(languages)}")
    folder = importlib.resources.files("chatterbot_corpus") / "data" / language
    files = sorted((entry for entry in folder.iterdir() if entry.name.endswith(YAML_SUFFIXES)), key=lambda e: e.name)
    conversations: list[Conversation] = []
    for entry in files:
        conversations += _parse_yaml(
            entry.read_text(encoding="utf-8"), f"chatterbot_corpus/data/{language}/{entry.name}"
        )
    return tuple(_non_empty(conversations, f"chatterbot_corpus/data/{language}"))


def load_conversations(source: str | Path | None = None, language: str = "english") -> list[Conversation]:
    """The conversations of ``source``, each a tuple of utterances (what is kept: see the module docstring).

    ``source`` is ``None`` (the installed chatterbot-corpus's ``language``; ``language`` matters only here),
    a ``.yml``/``.yaml`` file or a folder of them (read in file-name order, not recursively), or a ``.txt``
    file. A missing path, an unsupported suffix, malformed YAML, a wrong structure or a corpus with no
    conversation of two utterances is a :class:`CorpusError` (a ValueError) naming the file.
    """
    if source is None:
        return list(_installed_conversations(language))
    path = Path(source)
    if not path.exists():
        raise CorpusError(f"{path}: no such file or folder")
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in YAML_SUFFIXES)
        if not files:
            raise CorpusError(f"{path}: the folder holds no {'/'.join(YAML_SUFFIXES)} files")
        conversations = [conv for file in files for conv in _parse_yaml(_read(file), str(file))]
    elif path.suffix.lower() in YAML_SUFFIXES:
        conversations = _parse_yaml(_read(path), str(path))
    elif path.suffix.lower() == ".txt":
        conversations = _parse_txt(_read(path))
    else:
        raise CorpusError(
            f"{path}: unsupported suffix {path.suffix!r}; use .yml, .yaml, .txt or a folder of YAML files"
        )
    return _non_empty(conversations, str(path))


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise CorpusError(f"{path}: not UTF-8 text ({exc})") from None


def _parse_txt(text: str) -> list[Conversation]:
    conversations: list[Conversation] = []
    current: list[str] = []
    for line in [*text.splitlines(), ""]:  # the sentinel blank line ends the last conversation
        if line.strip():
            current.append(line.strip())
        elif current:
            conversations.append(tuple(current))
            current = []
    return [conv for conv in conversations if len(conv) >= 2]


def _parse_yaml(text: str, name: str) -> list[Conversation]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CorpusError(f"{name}: malformed YAML: {' '.join(str(exc).split())}") from None
    if data is None:
        raise CorpusError(f"{name}: the file is empty")
    if not isinstance(data, dict) or "conversations" not in data:
        raise CorpusError(f"{name}: wrong structure: expected a mapping with a 'conversations' list")
    raw_conversations = data["conversations"]
    if not isinstance(raw_conversations, list):
        raise CorpusError(
            f"{name}: wrong structure: 'conversations' is a {type(raw_conversations).__name__}, not a list"
        )
    conversations: list[Conversation] = []
    for index, raw in enumerate(raw_conversations):
        if isinstance(raw, list):
            utterances = [_utterance(item, f"{name}: conversation {index}") for item in raw]
        elif _is_scalar(raw):  # a bare string: one utterance (module docstring), so it is dropped below
            utterances = [_utterance(raw, f"{name}: conversation {index}")]
        else:
            raise CorpusError(f"{name}: wrong structure: conversation {index} is a {type(raw).__name__}, not a list")
        kept = tuple(u for u in utterances if u)
        if len(kept) >= 2:
            conversations.append(kept)
    return conversations


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool, datetime.date))


def _utterance(item: Any, where: str) -> str:
    """One utterance as stripped text ("" for a blank one, which the caller drops)."""
    if not _is_scalar(item):
        raise CorpusError(f"{where}: wrong structure: an utterance is a {type(item).__name__}, not text")
    return "" if item is None else str(item).strip()


def _non_empty(conversations: list[Conversation], name: str) -> list[Conversation]:
    if not conversations:
        raise CorpusError(f"{name}: empty corpus: no conversation has two non-blank utterances")
    return conversations


# ---------------------------------------------------------------------------------------------- splitting


def unique_conversations(conversations: Iterable[Conversation]) -> list[Conversation]:
    """``conversations`` with each repeated conversation kept once, at its first place."""
    return list(dict.fromkeys(tuple(conv) for conv in conversations))


def split_conversations(
    conversations: Sequence[Conversation], fractions: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0
) -> tuple[list[Conversation], list[Conversation], list[Conversation]]:
    """Train, valid and test conversations: a seeded shuffle of the *distinct* conversations, cut by ``fractions``.

    All copies of one conversation land in the same split (so no reply of a held-out conversation is
    trained on), and the split sizes count distinct conversations. Sizes are rounded by largest remainder,
    then any empty split takes one conversation from the largest, so each split is non-empty. ``fractions``
    must be three positive numbers summing to 1; fewer than three distinct conversations is a ValueError.
    The shuffle is numpy's legacy ``RandomState(seed)``, whose stream numpy keeps fixed across versions.
    """
    fractions = _checked_fractions(fractions)
    distinct = unique_conversations(conversations)
    if len(distinct) < len(SPLITS):
        raise ValueError(f"splitting needs at least {len(SPLITS)} distinct conversations, got {len(distinct)}")
    sizes = _split_sizes(len(distinct), fractions)
    order = np.random.RandomState(seed).permutation(len(distinct))
    split_of: dict[Conversation, int] = {}
    start = 0
    for split, size in enumerate(sizes):
        for position in order[start : start + size]:
            split_of[distinct[position]] = split
        start += size
    # Within a split, conversations keep the shuffled order (copies sit together after their first one).
    rank = {distinct[position]: rank for rank, position in enumerate(order)}
    parts: tuple[list[Conversation], ...] = ([], [], [])
    for conv in sorted((tuple(c) for c in conversations), key=rank.__getitem__):
        parts[split_of[conv]].append(conv)
    return parts  # type: ignore[return-value]


def _checked_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
    try:
        values = tuple(float(f) for f in fractions)
    except (TypeError, ValueError):
        raise ValueError(f"fractions must be three numbers, got {fractions!r}") from None
    if len(values) != len(SPLITS) or not all(math.isfinite(f) and f > 0 for f in values):
        raise ValueError(f"fractions must be three positive numbers (train, valid, test), got {fractions!r}")
    if abs(sum(values) - 1.0) > 1e-6:
        raise ValueError(f"fractions must sum to 1, got {fractions!r} (sum {sum(values):g})")
    return values  # type: ignore[return-value]


def _split_sizes(count: int, fractions: tuple[float, ...]) -> list[int]:
    exact = [f * count for f in fractions]
    sizes = [math.floor(x) for x in exact]
    by_remainder = sorted(range(len(sizes)), key=lambda i: (sizes[i] - exact[i], i))
    for i in by_remainder[: count - sum(sizes)]:
        sizes[i] += 1
    for i in range(len(sizes)):
        if sizes[i] == 0:
            sizes[max(range(len(sizes)), key=sizes.__getitem__)] -= 1
            sizes[i] = 1
    return sizes


# ---------------------------------------------------------------------------------------------- pairs and tensors


def reply_pairs(conversations: Iterable[Conversation], context_turns: int = 1) -> list[tuple[str, str]]:
    """(context, reply) for every utterance after a conversation's first: the reply is that utterance, the
    context its ``context_turns`` predecessors (fewer at the start) joined with a space."""
    if isinstance(context_turns, bool) or not isinstance(context_turns, int) or context_turns < 1:
        raise ValueError(f"context_turns must be a positive int, got {context_turns!r}")
    pairs = []
    for conv in conversations:
        for turn in range(1, len(conv)):
            pairs.append((" ".join(conv[max(0, turn - context_turns) : turn]), conv[turn]))
    return pairs


def encode_pairs(
    pairs: Sequence[tuple[str, str]], tokenizer: ChatTokenizer, context_len: int, reply_len: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """int64 contexts ``[N, context_len]`` and replies ``[N, reply_len]`` in the shared spec's layout.

    A context is its last ``context_len`` tokens, left-padded with PAD; a reply is its first
    ``reply_len - 1`` tokens and EOS, right-padded with PAD, so every corpus reply ends with EOS.
    """
    _check_lengths(context_len, reply_len)
    contexts = torch.full((len(pairs), context_len), WordTokenizer.PAD, dtype=torch.int64)
    replies = torch.full((len(pairs), reply_len), WordTokenizer.PAD, dtype=torch.int64)
    for row, (context, reply) in enumerate(pairs):
        context_ids = tokenizer.encode(context)[-context_len:]
        if context_ids:
            contexts[row, context_len - len(context_ids) :] = torch.tensor(context_ids)
        reply_ids = [*tokenizer.encode(reply)[: reply_len - 1], WordTokenizer.EOS]
        replies[row, : len(reply_ids)] = torch.tensor(reply_ids)
    return contexts, replies


def observation_layout(contexts: torch.Tensor, replies: torch.Tensor) -> torch.Tensor:
    """``[N, C + 1 + R]``: the contexts, a BOS column at ``C``, the replies (the env's observation layout)."""
    if contexts.dim() != 2 or replies.dim() != 2 or contexts.shape[0] != replies.shape[0]:
        raise ValueError(
            f"contexts and replies must be [N, C] and [N, R] with one N, got {tuple(contexts.shape)} and {tuple(replies.shape)}"
        )
    if contexts.dtype != torch.int64 or replies.dtype != torch.int64:
        raise ValueError(f"contexts and replies must be int64, got {contexts.dtype} and {replies.dtype}")
    bos = torch.full((contexts.shape[0], 1), WordTokenizer.BOS, dtype=torch.int64, device=contexts.device)
    return torch.cat([contexts, bos, replies.to(contexts.device)], dim=1)


def reply_as_context(replies: torch.Tensor, width: int) -> torch.Tensor:
    """Finished replies ``[N, R]`` as contexts ``[N, width]``: their words right-aligned after PADs (the last ``width``)."""
    words = (replies != WordTokenizer.PAD) & (replies != WordTokenizer.EOS)
    count = words.sum(1, keepdim=True)
    source = torch.arange(width, device=replies.device).unsqueeze(0) - (width - count)  # the word of each slot
    picked = replies.gather(1, source.clamp(0, replies.shape[1] - 1))
    return torch.where(source >= 0, picked, WordTokenizer.PAD)


def context_as_reply(contexts: torch.Tensor, width: int) -> torch.Tensor:
    """Left-padded contexts ``[N, C]`` as replies ``[N, width]``: their words from slot 0, EOS where there is room, PAD."""
    pads = (contexts == WordTokenizer.PAD).sum(1, keepdim=True)
    positions = torch.arange(width, device=contexts.device).unsqueeze(0)
    source = positions + pads  # reply slot j holds context word j
    inside = source < contexts.shape[1]
    words = torch.where(inside, contexts.gather(1, source.clamp(max=contexts.shape[1] - 1)), WordTokenizer.PAD)
    return torch.where(positions == contexts.shape[1] - pads, WordTokenizer.EOS, words)


def _check_lengths(context_len: int, reply_len: int) -> None:
    for name, value, least in (("context_len", context_len, 1), ("reply_len", reply_len, 2)):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ValueError(f"{name} must be an int >= {least}, got {value!r}")


# ---------------------------------------------------------------------------------------------- the corpus


@dataclass(frozen=True)
class ChatCorpus:
    """A tokenizer and the encoded (contexts, replies) of the three splits, as :func:`encode_pairs` gives them."""

    tokenizer: ChatTokenizer
    train: tuple[torch.Tensor, torch.Tensor]
    valid: tuple[torch.Tensor, torch.Tensor]
    test: tuple[torch.Tensor, torch.Tensor]
    context_len: int
    reply_len: int

    @classmethod
    def build(
        cls,
        source: str | Path | None = None,
        context_len: int = 16,
        reply_len: int = 16,
        min_count: int = 1,
        max_vocab: int | None = None,
        context_turns: int = 1,
        seed: int = 0,
        language: str = "english",
        tokenizer: str = "word",
        bpe_vocab_size: int | None = None,
    ) -> ChatCorpus:
        """Load ``source`` (see :func:`load_conversations`), keep one copy of each conversation, split 80/10/10
        with ``seed``, and encode the reply pairs. The tokenizer is learnt from the train split's utterances only:
        ``"word"`` (``min_count``, ``max_vocab`` as in :meth:`WordTokenizer.build`; held-out words become UNK) or
        ``"bpe"`` (:class:`~rlcourse.envs.chatbot.bpe.BPETokenizer` of ``bpe_vocab_size`` ids, None for its
        default; held-out words become subwords). An option of the other tokenizer is a ValueError."""
        _check_lengths(context_len, reply_len)
        train_texts = _tokenizer_trainer(tokenizer, min_count, max_vocab, bpe_vocab_size)
        conversations = unique_conversations(load_conversations(source, language=language))
        parts = split_conversations(conversations, seed=seed)
        tokenizer = train_texts(u for conv in parts[0] for u in conv)
        encoded = [encode_pairs(reply_pairs(part, context_turns), tokenizer, context_len, reply_len) for part in parts]
        return cls(tokenizer, *encoded, context_len=context_len, reply_len=reply_len)

    def split(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """The (contexts, replies) of ``"train"``, ``"valid"`` or ``"test"``."""
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}; expected one of {', '.join(SPLITS)}")
        return getattr(self, name)

    def unk_rate(self, split: str) -> float:
        """The fraction of a split's non-special tokens (contexts and replies; UNK counts as one) that are UNK."""
        tokens = torch.cat([part.flatten() for part in self.split(split)])
        real = tokens > WordTokenizer.EOS  # everything but PAD, BOS, EOS
        return float((tokens == WordTokenizer.UNK).sum()) / max(int(real.sum()), 1)


def _tokenizer_trainer(
    kind: str, min_count: int, max_vocab: int | None, bpe_vocab_size: int | None
) -> Callable[[Iterable[str]], ChatTokenizer]:
    """What learns the tokenizer ``kind`` from texts, once its options are checked (before any file is read)."""
    if check_tokenizer_name(kind) == "word":
        if bpe_vocab_size is not None:
            raise ValueError(f"bpe_vocab_size is an option of tokenizer='bpe', not 'word' (got {bpe_vocab_size!r})")
        return lambda texts: WordTokenizer.build(texts, min_count=min_count, max_size=max_vocab)
    from rlcourse.envs.chatbot.bpe import DEFAULT_VOCAB_SIZE, BPETokenizer, check_vocab_size

    if min_count != 1 or max_vocab is not None:
        raise ValueError(
            "min_count and max_vocab are options of tokenizer='word'; with tokenizer='bpe' set bpe_vocab_size "
            f"(got min_count={min_count!r}, max_vocab={max_vocab!r})"
        )
    size = check_vocab_size(DEFAULT_VOCAB_SIZE if bpe_vocab_size is None else bpe_vocab_size, "bpe_vocab_size")
    return lambda texts: BPETokenizer.build(texts, vocab_size=size)
