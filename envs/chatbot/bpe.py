"""Byte-level BPE for the chatbot env (``tokenizer="bpe"``), trained on the train split with Hugging Face ``tokenizers``.

**Why byte-level.** The 256 byte symbols are the BPE alphabet, so every text encodes: a word that only a held-out
conversation uses is spelt in subwords instead of becoming UNK, and ``decode(encode(text))`` is the normalised
text exactly. The word tokenizer (:mod:`~rlcourse.envs.chatbot.tokenizer`) maps 11–13 % of held-out tokens to UNK.

**Ids.** ``PAD=0``, ``BOS=1``, ``EOS=2``, ``UNK=3`` as for every chatbot tokenizer; the BPE model's own token k is
id ``4 + k``. The ``tokenizers`` model holds no special or added token at all, so no text encodes to a special
(``"<unk>"`` typed by a user is ordinary bytes) and the byte-level model never gives UNK.

**Normalisation** is the word tokenizer's (:func:`~rlcourse.envs.chatbot.tokenizer.normalise`: NFKC, straight
quotes, lower case), then runs of whitespace become one space and the ends are stripped (the word split ignores
whitespace, so the two tokenizers read the same text). Pre-tokenisation is GPT-2's byte-level split with a prefix
space: a word carries the space before it (``"Ġhello"``), punctuation and the ``'t`` / ``'s`` of contractions are
apart; the trainer then learns merges up to the vocabulary size (the four specials and the 256 bytes included).
``words``, the action names, are the model's token strings in that byte alphabet (``"Ġhello"``, ``","``).

**Decoding** runs the byte-level decoder over each stretch of ordinary ids, and strips the prefix space. A reply
cut inside a multi-byte character shows U+FFFD there.

``tokenizers`` is imported only when a BPE tokenizer is built or read; :meth:`BPETokenizer.to_dict` holds the
trained model as ``tokenizers``' own JSON (``Tokenizer.to_str``), so :meth:`~BPETokenizer.from_dict` needs no
download and no file.
"""

from __future__ import annotations

import functools
import json
import numbers
from collections.abc import Iterable
from typing import Any

from rlcourse.envs.chatbot.tokenizer import TokenVocabulary, normalise, signature_of

#: What ``to_dict`` writes as ``"format"``.
FORMAT = "rlcourse.chatbot.bpe_tokenizer"
FORMAT_VERSION = 1
#: The byte-level alphabet's size: the least vocabulary, with the four specials, is 260.
BYTES = 256
MIN_VOCAB_SIZE = len(TokenVocabulary.SPECIALS) + BYTES
#: The vocabulary size (specials included) when none is given: the best test perplexity per word of the sizes
#: measured on the default corpus (docs/chatbot.md, "Tokenizers").
DEFAULT_VOCAB_SIZE = 2000


def _tokenizers() -> Any:
    try:
        import tokenizers
    except ImportError:
        raise ImportError(
            "the chatbot's tokenizer='bpe' needs the tokenizers package: pip install 'tokenizers>=0.15'"
        ) from None
    return tokenizers


def check_vocab_size(value: Any, name: str = "vocab_size") -> int:
    """``value`` if it is an int >= :data:`MIN_VOCAB_SIZE`, else a ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < MIN_VOCAB_SIZE:
        raise ValueError(
            f"{name} must be an int >= {MIN_VOCAB_SIZE} (the 4 special tokens and the {BYTES} bytes), got {value!r}"
        )
    return int(value)


def clean(text: str) -> str:
    """``text`` as the BPE model reads it: :func:`normalise`, one space between words, no space at the ends."""
    return " ".join(normalise(text).split())


class BPETokenizer(TokenVocabulary):
    """Byte-level BPE: text <-> token ids, with the chatbot's fixed specials (the module docstring has the rules).

    Built by :meth:`build` (training) or from a ``tokenizers`` JSON string of a byte-level BPE model without
    added tokens (what :meth:`to_dict` stores); anything else is a ValueError.
    """

    #: The value of the env option ``tokenizer`` that picks this class.
    name = "bpe"

    def __init__(self, model_json: str):
        if not isinstance(model_json, str):
            raise ValueError(f"a BPE tokenizer is built from tokenizers' JSON string, got {type(model_json).__name__}")
        try:
            spec = json.loads(model_json)
            tokenizer = _tokenizers().Tokenizer.from_str(model_json)
        except Exception as exc:  # json's and the Rust library's errors alike
            raise ValueError(f"not a tokenizers JSON: {' '.join(str(exc).split())[:200]}") from None
        _check_spec(spec)
        size = tokenizer.get_vocab_size(with_added_tokens=False)
        self._tokenizer = tokenizer
        self._json = model_json
        self._words = (*self.SPECIALS, *(tokenizer.id_to_token(k) for k in range(size)))
        merges = spec["model"]["merges"]  # "a b" strings (tokenizers < 0.20) or [a, b] pairs
        self._merges = tuple(tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in merges)

    @classmethod
    def build(cls, texts: Iterable[str], vocab_size: int = DEFAULT_VOCAB_SIZE) -> BPETokenizer:
        """Byte-level BPE learnt on ``texts`` with ``vocab_size`` ids at most, the four specials included (fewer
        when the texts run out of pairs to merge). The same texts give the same tokenizer."""
        vocab_size = check_vocab_size(vocab_size)
        tk = _tokenizers()
        tokenizer = tk.Tokenizer(tk.models.BPE())
        tokenizer.pre_tokenizer = tk.pre_tokenizers.ByteLevel(add_prefix_space=True)
        tokenizer.decoder = tk.decoders.ByteLevel()
        trainer = tk.trainers.BpeTrainer(
            vocab_size=vocab_size - len(cls.SPECIALS),
            initial_alphabet=tk.pre_tokenizers.ByteLevel.alphabet(),
            special_tokens=[],
            show_progress=False,
        )
        tokenizer.train_from_iterator([clean(text) for text in texts], trainer)
        return cls(tokenizer.to_str())

    @functools.cached_property
    def signature(self) -> str:
        """``"bpe/<vocab_size>/<digest>"`` over the tokens and merges (:func:`signature_of`)."""
        return signature_of(self.name, {"words": list(self._words), "merges": self._merges}, self.vocab_size)

    def encode(self, text: str) -> list[int]:
        """The ids of ``text`` (never a special: no BOS or EOS is added, and byte-level BPE has no UNK)."""
        offset = len(self.SPECIALS)
        return [offset + k for k in self._tokenizer.encode(clean(text), add_special_tokens=False).ids]

    def decode(self, ids: Iterable[int], skip_special: bool = True) -> str:
        """Ids back into text.

        With ``skip_special`` (the default) it stops at the first EOS, skips PAD and BOS, and writes UNK as
        ``<unk>``. Without it every id is written, specials by their spelling, and EOS does not stop it. A
        special is set off by a space before it; an id outside the vocabulary is a ValueError.
        """
        offset, pieces, stretch = len(self.SPECIALS), [], []
        for raw in ids:
            index = int(raw)
            if not 0 <= index < len(self._words):
                raise ValueError(f"token id {index} is outside the vocabulary [0, {len(self._words)})")
            if index >= offset:
                stretch.append(index - offset)
                continue
            if skip_special and index == self.EOS:
                break
            if skip_special and index in (self.PAD, self.BOS):
                continue
            pieces += [self._tokenizer.decode(stretch), " " + self._words[index]]
            stretch = []
        pieces.append(self._tokenizer.decode(stretch))
        return "".join(pieces).strip(" ")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able description that :meth:`from_dict` reads back: the trained model in ``tokenizers``' JSON."""
        return {"format": FORMAT, "version": FORMAT_VERSION, "tokenizer": self._json}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BPETokenizer:
        """The tokenizer that :meth:`to_dict` described; a foreign or damaged description is a ValueError."""
        if not isinstance(data, dict):
            raise ValueError(f"a tokenizer description must be a dict, got {type(data).__name__}")
        if data.get("format") != FORMAT:
            raise ValueError(f"not a BPE-tokenizer description: format is {data.get('format')!r}, expected {FORMAT!r}")
        if data.get("version") != FORMAT_VERSION:
            raise ValueError(
                f"unsupported BPE-tokenizer version {data.get('version')!r} (this code reads {FORMAT_VERSION})"
            )
        return cls(data.get("tokenizer"))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, BPETokenizer) and (self._words, self._merges) == (other._words, other._merges)

    def __hash__(self) -> int:
        return hash((self._words, self._merges))

    def __repr__(self) -> str:
        return f"BPETokenizer(vocab_size={self.vocab_size})"


def _check_spec(spec: Any) -> None:
    """A ValueError unless ``spec`` (a parsed tokenizers JSON) is a byte-level BPE model with no added tokens."""
    model = spec.get("model") if isinstance(spec, dict) else None
    if not isinstance(model, dict) or model.get("type") != "BPE":
        raise ValueError(
            f"the tokenizers JSON holds a {model.get('type') if isinstance(model, dict) else None!r} model, not BPE"
        )
    for part in ("pre_tokenizer", "decoder"):
        kind = (spec.get(part) or {}).get("type")
        if kind != "ByteLevel":
            raise ValueError(f"the tokenizers JSON's {part} is {kind!r}, not ByteLevel (byte-level BPE)")
    if spec.get("added_tokens"):
        raise ValueError("the tokenizers JSON has added tokens; the chatbot's specials live outside the BPE model")
