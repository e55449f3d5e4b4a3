"""The NLU seam: how an env hears its user through a learned model that it knows only by this protocol.

A text env renders what its simulated user says as token ids; an :class:`UtteranceParser` reads them
back as an intent and one BIO tag per token (slot filling, notes:3928-3937 [RNN]); the env turns the
tags into slot values with its own domain knowledge. So the parser is a generic sequence labeller:
it declares the words, tags and intents it was fitted on, and an env checks them against its own
before it listens (a tagger of another domain is refused by name).

Saved parsers are rlcourse checkpoints (:mod:`rlcourse.checkpoint`: plain tensors and data, read with
``weights_only=True``) that name their *model kind*. A plug-in package teaches the core to rebuild
a kind by registering a loader, through the ``rlcourse.nlu`` entry-point group (as env packages do
through ``rlcourse.envs``) or by calling :func:`register_nlu_loader`; the core itself imports none.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch

from rlcourse.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from rlcourse.config import did_you_mean

#: The entry-point group through which plug-in packages register their NLU loaders.
NLU_PLUGIN_GROUP = "rlcourse.nlu"
#: The ``kind`` of a checkpoint holding a parser (an agent's checkpoint has none).
NLU_KIND = "rlcourse-nlu"


@runtime_checkable
class UtteranceParser(Protocol):
    """What an env needs of a learned NLU.

    ``vocabulary[i]`` is the word of token id ``i`` (id 0 pads), ``tags`` the BIO tag names (tag 0 is
    ``O``), ``intents`` the intent names, in the orders the parser's outputs use.
    """

    vocabulary: Sequence[str]
    tags: Sequence[str]
    intents: Sequence[str]

    def parse(self, tokens: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Read a batch: ``tokens`` ``[B, T]`` int64 (0 beyond each length), ``lengths`` ``[B]`` int64.

        Returns the intent ``[B]`` int64, the tags ``[B, T]`` int64 (0 beyond each length) and a confidence
        in [0, 1] per utterance ``[B]`` float32, all on the tokens' device, with no host reads (an env calls
        it inside its ``step``).
        """
        ...


#: model kind -> the function that rebuilds a parser from a checkpoint's ``nlu`` payload on a device.
_LOADERS: dict[str, Callable[[dict[str, Any], torch.device], UtteranceParser]] = {}


def register_nlu_loader(model: str, loader: Callable[[dict[str, Any], torch.device], UtteranceParser]) -> None:
    """Teach :func:`load_nlu` to rebuild parsers of kind ``model`` (a plug-in calls this from its entry point)."""
    _LOADERS[model] = loader


def _load_plugins() -> None:
    for entry_point in metadata.entry_points(group=NLU_PLUGIN_GROUP):
        try:
            entry_point.load()()
        except Exception as error:  # a broken plug-in package must not break the others
            warnings.warn(
                f"the NLU plugin {entry_point.name!r} failed to register: {error}", RuntimeWarning, stacklevel=3
            )


def save_nlu(path: str | Path, model: str, payload: dict[str, Any]) -> Path:
    """Save a parser: ``payload`` (tensors and plain data) with its model kind, atomically."""
    return save_checkpoint({"kind": NLU_KIND, "nlu": {"model": model, **payload}}, path)


def load_nlu(path: str | Path, device: str | torch.device = "cpu") -> UtteranceParser:
    """The parser saved at ``path``, on ``device``; a ``ValueError`` names what is wrong (missing file, not a
    parser, a model kind no installed plug-in knows)."""
    payload = load_checkpoint(path, map_location="cpu")
    if payload.get("kind") != NLU_KIND or not isinstance(payload.get("nlu"), dict):
        raise CheckpointError(
            f"{str(path)!r} is an rlcourse checkpoint but not a saved NLU (fit one with `rlcourse fit nlu`)"
        )
    model = payload["nlu"].get("model")
    if model not in _LOADERS:
        _load_plugins()
    if model not in _LOADERS:
        hint = did_you_mean(str(model), _LOADERS)
        raise ValueError(
            f"{str(path)!r} holds an NLU of kind {model!r}, which no installed plug-in loads; "
            f"{hint + ' ' if hint else ''}known kinds: {', '.join(sorted(_LOADERS)) or 'none'} (a plug-in registers its "
            f"kinds through the {NLU_PLUGIN_GROUP!r} entry-point group)"
        )
    return _LOADERS[model](payload["nlu"], torch.device(device))


def check_parser(
    parser: Any, vocabulary: Sequence[str], tags: Sequence[str], intents: Sequence[str], where: str
) -> UtteranceParser:
    """``parser`` itself, once it is an :class:`UtteranceParser` for exactly these words, tags and intents;
    else a ``ValueError`` that says what differs (``where`` names the env or domain in the message)."""
    if not isinstance(parser, UtteranceParser):
        raise ValueError(
            f"{type(parser).__name__} is not an NLU parser: it needs vocabulary, tags, intents and "
            "parse(tokens, lengths) -> (intent, tags, confidence)"
        )
    for name, theirs, ours in (("vocabulary", parser.vocabulary, vocabulary), ("tags", parser.tags, tags),
                               ("intents", parser.intents, intents)):  # fmt: skip
        if list(theirs) != list(ours):
            fitted = getattr(parser, "domain", None)
            origin = f" (it was fitted on the domain {fitted!r})" if fitted else ""
            extra = sorted(set(theirs) ^ set(ours))[:3]
            differ = f"; they differ in {', '.join(map(repr, extra))}" if extra else " (in their order)"
            raise ValueError(f"the NLU does not fit {where}: its {name} differ{origin}{differ}")
    return parser
