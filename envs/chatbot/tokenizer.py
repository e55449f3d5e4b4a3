"""A word-level tokenizer for the chatbot env: a fixed vocabulary, lower-cased words and punctuation marks.

The ids of the four special tokens are fixed for every tokenizer of the chatbot (the shared spec):
``PAD=0``, ``BOS=1``, ``EOS=2``, ``UNK=3``; real words take the ids from 4 up, in vocabulary order.
The other tokenizer, byte-level BPE, is :class:`~rlcourse.envs.chatbot.bpe.BPETokenizer`; both have the
interface of :class:`ChatTokenizer`, and :func:`tokenizer_from_dict` reads either back.

**Splitting** (:meth:`WordTokenizer.split`). The text is normalised first: Unicode NFKC (so a no-break
space is a space and ``…`` is ``...``), curly quotes become straight ones (``’`` -> ``'``, ``“”`` -> ``"``),
then everything is lower-cased. Tokens are then, left to right:

* a number with inner separators, kept whole: ``3.14``, ``1,000``, ``10:30``;
* a word: a run of letters, digits and underscores, with apostrophes allowed *between* such runs, so
  ``don't``, ``i'm`` and ``rock'n'roll`` are single words while the quotes of ``'22'`` are not;
* any other visible character, one token per character (``.``, ``,``, ``?``, ``(``, ``'``, ``=``, ...).

Whitespace only separates tokens. Because ``<`` and ``>`` are punctuation, no text ever splits into a
special token's spelling: ``"<unk>"`` typed by a user is three tokens.

**Joining** (:meth:`WordTokenizer.decode`). Tokens are joined with single spaces, except that a closing
mark (``. , ! ? ; : % ) ] }``) attaches to the token before it and an opening bracket (``( [ {``) to the
token after it: ``"hi , there ."`` -> ``"hi, there."``. So ``decode(encode(text))`` is the normalised text
whenever the text is spaced that way and every word is in the vocabulary.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

# Numbers first, so "3.14" is one token rather than "3", ".", "14".
_TOKEN = re.compile(r"\d+(?:[.,:]\d+)+|\w+(?:'\w+)*|[^\w\s]")
_QUOTES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u201c": '"', "\u201d": '"'})
_NO_SPACE_BEFORE = frozenset(".,!?;:%)]}")
_NO_SPACE_AFTER = frozenset("([{")

#: What ``to_dict`` writes as ``"format"``, so ``from_dict`` can tell a tokenizer from another JSON object.
FORMAT = "rlcourse.chatbot.word_tokenizer"
FORMAT_VERSION = 1


#: The chatbot's tokenizers by the name the env option ``tokenizer`` takes.
TOKENIZERS = ("word", "bpe")


def check_tokenizer_name(name: Any) -> str:
    """``name`` if it is one of :data:`TOKENIZERS`, else a ValueError naming the option ``tokenizer``."""
    if not isinstance(name, str) or name not in TOKENIZERS:
        raise ValueError(f"tokenizer must be one of {', '.join(map(repr, TOKENIZERS))}, got {name!r}")
    return name


class ChatTokenizer(Protocol):
    """What the chatbot env, its corpus and its plug-ins need of a tokenizer (WordTokenizer, BPETokenizer)."""

    PAD: int
    BOS: int
    EOS: int
    UNK: int
    name: str

    @property
    def vocab_size(self) -> int: ...
    @property
    def words(self) -> tuple[str, ...]: ...
    @property
    def signature(self) -> str: ...
    def encode(self, text: str) -> list[int]: ...
    def decode(self, ids: Iterable[int], skip_special: bool = True) -> str: ...
    def to_dict(self) -> dict[str, Any]: ...


def normalise(text: str) -> str:
    """``text`` as every chatbot tokenizer sees it: Unicode NFKC, straight quotes, lower case."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    return unicodedata.normalize("NFKC", text).translate(_QUOTES).lower()


def split_text(text: str) -> list[str]:
    """The tokens of ``text`` under the rule of the module docstring (no vocabulary involved)."""
    return _TOKEN.findall(normalise(text))


def signature_of(name: str, description: dict[str, Any], vocab_size: int) -> str:
    """``"<name>/<vocab_size>/<digest>"``: which tokenizer this is, the digest over its whole :meth:`to_dict`, so
    two tokenizers of one kind and size but other vocabularies differ (what plug-ins record and check)."""
    digest = hashlib.sha256(json.dumps(description, sort_keys=True).encode()).hexdigest()[:12]
    return f"{name}/{vocab_size}/{digest}"


def tokenizer_from_dict(data: dict[str, Any]) -> ChatTokenizer:
    """The word or BPE tokenizer a :meth:`to_dict` described (told apart by its ``"format"``)."""
    from rlcourse.envs.chatbot.bpe import FORMAT as BPE_FORMAT
    from rlcourse.envs.chatbot.bpe import BPETokenizer

    kind = data.get("format") if isinstance(data, dict) else None
    if kind == BPE_FORMAT:
        return BPETokenizer.from_dict(data)
    if kind == FORMAT:
        return WordTokenizer.from_dict(data)
    raise ValueError(f"not a chatbot tokenizer description: format is {kind!r}, expected {FORMAT!r} or {BPE_FORMAT!r}")


def join_tokens(tokens: Iterable[str]) -> str:
    """Tokens back into text, with the spacing rule of the module docstring."""
    pieces: list[str] = []
    glue_next = True  # no space before the first token, nor after an opening bracket
    for token in tokens:
        if pieces and not glue_next and token not in _NO_SPACE_BEFORE:
            pieces.append(" ")
        pieces.append(token)
        glue_next = token in _NO_SPACE_AFTER
    return "".join(pieces)


class TokenVocabulary:
    """What every chatbot tokenizer shares: the fixed special ids and the vocabulary, a tuple ``_words`` in id order."""

    PAD, BOS, EOS, UNK = 0, 1, 2, 3
    SPECIALS = ("<pad>", "<bos>", "<eos>", "<unk>")
    _words: tuple[str, ...]

    @property
    def vocab_size(self) -> int:
        """The number of ids, specials included."""
        return len(self._words)

    @property
    def words(self) -> tuple[str, ...]:
        """The token strings in id order, :attr:`SPECIALS` first (the env's action names)."""
        return self._words


class WordTokenizer(TokenVocabulary):
    """A fixed word vocabulary: text <-> token ids (see the module docstring for the split and join rules).

    ``words`` is the whole vocabulary, :attr:`SPECIALS` first in that order; word ``i`` has id ``i``.
    Every other entry must be a token that :meth:`split` can produce (a non-empty str without
    whitespace, lower-case, one word or one punctuation mark), and no entry may appear twice.
    """

    #: The value of the env option ``tokenizer`` that picks this class.
    name = "word"

    def __init__(self, words: Sequence[str]):
        self._words = _checked_vocabulary(words)
        self._ids = {word: index for index, word in enumerate(self._words)}

    @classmethod
    def build(cls, texts: Iterable[str], min_count: int = 1, max_size: int | None = None) -> WordTokenizer:
        """The vocabulary of ``texts``: words seen at least ``min_count`` times, most frequent first.

        Ties in count are broken alphabetically, so the result depends only on the multiset of tokens.
        ``max_size`` caps :attr:`vocab_size`, the four specials included (so it must be at least 4);
        the rarest words are the ones left out.
        """
        if isinstance(min_count, bool) or not isinstance(min_count, int) or min_count < 1:
            raise ValueError(f"min_count must be a positive int, got {min_count!r}")
        if max_size is not None and (
            isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < len(cls.SPECIALS)
        ):
            raise ValueError(f"max_size must be None or an int >= {len(cls.SPECIALS)} (the specials), got {max_size!r}")
        counts: Counter[str] = Counter()
        for text in texts:
            counts.update(split_text(text))
        ranked = sorted((word for word, count in counts.items() if count >= min_count), key=lambda w: (-counts[w], w))
        if max_size is not None:
            ranked = ranked[: max_size - len(cls.SPECIALS)]
        return cls((*cls.SPECIALS, *ranked))

    @functools.cached_property
    def signature(self) -> str:
        """``"word/<vocab_size>/<digest>"`` (:func:`signature_of`)."""
        return signature_of(self.name, self.to_dict(), self.vocab_size)

    def split(self, text: str) -> list[str]:
        """The tokens of ``text`` (lower-cased words and punctuation marks; the module docstring has the rule)."""
        return split_text(text)

    def encode(self, text: str) -> list[int]:
        """The ids of ``text``'s tokens, :attr:`UNK` for a token outside the vocabulary; no BOS or EOS is added."""
        return [self._ids.get(token, self.UNK) for token in split_text(text)]

    def decode(self, ids: Iterable[int], skip_special: bool = True) -> str:
        """Ids back into text.

        With ``skip_special`` (the default) it stops at the first EOS, skips PAD and BOS, and writes UNK as
        ``<unk>``. Without it every id is written, specials by their spelling, and EOS does not stop it.
        ``ids`` may be any iterable of ints, a 1-D tensor or array included; an id outside the vocabulary
        is a ValueError.
        """
        tokens: list[str] = []
        for raw in ids:
            index = int(raw)
            if not 0 <= index < len(self._words):
                raise ValueError(f"token id {index} is outside the vocabulary [0, {len(self._words)})")
            if skip_special:
                if index == self.EOS:
                    break
                if index in (self.PAD, self.BOS):
                    continue
            tokens.append(self._words[index])
        return join_tokens(tokens)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able description that :meth:`from_dict` reads back."""
        return {"format": FORMAT, "version": FORMAT_VERSION, "words": list(self._words)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WordTokenizer:
        """The tokenizer that :meth:`to_dict` described; a foreign or damaged description is a ValueError."""
        if not isinstance(data, dict):
            raise ValueError(f"a tokenizer description must be a dict, got {type(data).__name__}")
        if data.get("format") != FORMAT:
            raise ValueError(f"not a word-tokenizer description: format is {data.get('format')!r}, expected {FORMAT!r}")
        if data.get("version") != FORMAT_VERSION:
            raise ValueError(
                f"unsupported word-tokenizer version {data.get('version')!r} (this code reads {FORMAT_VERSION})"
            )
        words = data.get("words")
        if not isinstance(words, list):
            raise ValueError(f"the tokenizer description's 'words' must be a list, got {type(words).__name__}")
        return cls(words)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, WordTokenizer) and self._words == other._words

    def __hash__(self) -> int:
        return hash(self._words)

    def __repr__(self) -> str:
        return f"WordTokenizer(vocab_size={self.vocab_size})"


def _checked_vocabulary(words: Sequence[str]) -> tuple[str, ...]:
    """``words`` as a tuple, or a ValueError naming the first problem (the rules are WordTokenizer's)."""
    if isinstance(words, str) or not isinstance(words, Sequence):
        raise ValueError(f"the vocabulary must be a sequence of str, got {type(words).__name__}")
    words = tuple(words)
    for index, word in enumerate(words):
        if not isinstance(word, str):
            raise ValueError(f"vocabulary entry {index} is a {type(word).__name__}, not a str: {word!r}")
    specials = WordTokenizer.SPECIALS
    head = words[: len(specials)]
    if head != specials:
        missing = [s for s in specials if s not in words]
        if missing:
            raise ValueError(f"the vocabulary lacks the special tokens {missing}; it must start with {list(specials)}")
        raise ValueError(
            f"the special tokens are misplaced: the vocabulary must start with {list(specials)}, got {list(head)}"
        )
    seen: dict[str, int] = {}
    for index, word in enumerate(words):
        if word in seen:
            raise ValueError(f"duplicate word {word!r} at ids {seen[word]} and {index}")
        seen[word] = index
        if index < len(specials):
            continue
        if not word:
            raise ValueError(f"vocabulary entry {index} is the empty string")
        if any(ch.isspace() for ch in word):
            raise ValueError(f"vocabulary entry {index} ({word!r}) contains whitespace")
        if split_text(word) != [word]:
            raise ValueError(
                f"vocabulary entry {index} ({word!r}) is not a single token of the split rule "
                f"(it splits into {split_text(word)}), so no text could ever encode to it"
            )
    return words
