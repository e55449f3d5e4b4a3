"""Fitting a slot tagger on the env's corpus, and saving and loading it under the checkpoint rules.

:func:`fit_tagger` draws a training corpus (training values and templates, with word noise), trains
by Adam on the tagger's negative log-likelihood (CRF tags plus intent; per-word cross-entropy for the
baseline), with gradient norms clipped as the notes advise for RNNs (notes:4137-4175 [RNN]), and
scores it on the held-out value and template splits (and on the ambiguous-context set where the
domain has one). It logs ``train/loss`` and the ``eval/*`` scores to TensorBoard like the agents.

A saved tagger is an rlcourse checkpoint of plain tensors and data (:func:`rlcourse.nlu.save_nlu`):
its spec, which words it knows, and its ``state_dict``; :func:`load_tagger` rebuilds it, and is the
loader this package registers for :func:`rlcourse.nlu.load_nlu`.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from rlcourse.checkpoint import CheckpointError
from rlcourse.config import check_fields, hp
from rlcourse.envs.dialogue.domain import load_domain
from rlcourse.envs.dialogue.speech import INTENTS
from rlcourse.logger import RunLogger
from rlcourse.nlu import save_nlu
from rlcourse.supervised.nlu.corpus import Corpus, ambiguous_slots, make_corpus
from rlcourse.supervised.nlu.models import MODELS, TaggerSpec, build_tagger
from rlcourse.supervised.nlu.scoring import evaluate


@dataclass
class NluFitConfig:
    """Settings of :func:`fit_tagger` (presets in ``rlcourse/presets/nlu.yml``)."""

    model: str = hp(
        "bilstm_crf", "Tagger: bilstm_crf (BiLSTM+CRF with an intent head) or word_mlp (the per-word baseline)."
    )
    train_size: int = hp(6000, "Training sentences (training values and templates).")
    eval_size: int = hp(1500, "Sentences in each held-out evaluation set.")
    epochs: int = hp(6, "Passes over the training corpus.")
    batch_size: int = hp(64, "Sentences per gradient step.")
    learning_rate: float = hp(0.003, "Adam step size.")
    embedding_dim: int = hp(48, "Word embedding size.")
    shape_dim: int = hp(8, "Word-shape embedding size.")
    hidden_dim: int = hp(64, "LSTM state size per direction (the MLP's hidden size).")
    char_filters: int = hp(0, "Spelling features: width-3 character convolution filters per word (0: none).")
    char_dim: int = hp(16, "Character embedding size (with char_filters).")
    word_dropout: float = hp(0.05, "Chance a training word reads as <unk>.")
    value_dropout: float = hp(0.3, "Chance a training slot-value word reads as <unk> (teaches context).")
    spelling_dropout: float = hp(
        0.5, "Chance a word read as <unk> in training loses its spelling too, as a typo does (with char_filters)."
    )
    typo: float = hp(0.02, "Chance a training word is misspelt (<unk>, keeping its tag).")
    drop: float = hp(0.02, "Chance a training word is dropped.")
    max_grad_norm: float = hp(15.0, "Gradient-norm clip (the notes' 15).")
    log_interval: int = hp(50, "Gradient steps between train/loss points.")
    train_values: str = hp("train", "Values said in training: train (held-out ones never) or all (for use in the env).")
    train_templates: str = hp("train", "Paraphrases said in training: train (held-out ones never) or all.")

    def __post_init__(self):
        if self.model not in MODELS:
            raise ValueError(f"unknown tagger model {self.model!r}; choose one of {', '.join(MODELS)}")
        check_fields(
            self,
            positive=("train_size", "eval_size", "epochs", "batch_size", "learning_rate", "embedding_dim", "shape_dim",
                      "hidden_dim", "char_dim", "max_grad_norm", "log_interval"),
            nonnegative=("char_filters", "word_dropout", "value_dropout", "spelling_dropout", "typo", "drop"),
            net_arch=None,
        )  # fmt: skip
        for name in ("train_values", "train_templates"):
            if getattr(self, name) not in ("train", "all"):
                raise ValueError(f"{name} must be train or all, got {getattr(self, name)!r}")
        for name in ("word_dropout", "value_dropout", "typo", "drop"):  # spelling_dropout may be 1 (a typo always)
            if getattr(self, name) >= 1:
                raise ValueError(f"{name} must be below 1, got {getattr(self, name)!r}")
        if self.spelling_dropout > 1:
            raise ValueError(f"spelling_dropout must be at most 1, got {self.spelling_dropout!r}")


def evaluation_sets(domain: str, size: int, seed: int) -> dict[str, Corpus]:
    """The held-out sets of a domain: unseen values, unseen templates, and the ambiguous-context set if any."""
    sets = {
        "heldout_values": make_corpus(domain, size, seed + 1, values="heldout", templates="train"),
        "heldout_templates": make_corpus(domain, size, seed + 2, values="train", templates="heldout"),
    }
    if ambiguous_slots(load_domain(domain)):
        sets["ambiguous"] = make_corpus(domain, size, seed + 3, values="train", templates="train", ambiguous=True)
    return sets


def fit_tagger(
    domain: str, config: NluFitConfig, seed: int = 0, run_dir: str | Path | None = None, progress_bar: bool = False
) -> tuple[torch.nn.Module, dict[str, float]]:
    """Train a tagger of ``config.model`` on ``domain``'s corpus; returns it (in eval mode) and its held-out scores."""
    torch.manual_seed(seed)
    corpus = make_corpus(
        domain, config.train_size, seed, config.train_values, config.train_templates, config.typo, config.drop
    )
    lexicon = corpus.lexicon
    known = torch.zeros(len(lexicon.vocabulary), dtype=torch.bool)
    known[corpus.tokens[corpus.tokens > 0].unique()] = True
    known[lexicon.word_id["<unk>"]] = True
    spec = TaggerSpec(
        tuple(lexicon.vocabulary), tuple(lexicon.tags), INTENTS, load_domain(domain).name, config.model,
        config.embedding_dim, config.shape_dim, config.hidden_dim, config.char_dim, config.char_filters,
    )  # fmt: skip
    model = build_tagger(spec, known)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    steps_per_epoch = -(-len(corpus) // config.batch_size)
    total = config.epochs * steps_per_epoch
    logger = RunLogger(run_dir, total, progress_bar)
    generator = torch.Generator().manual_seed(seed)
    step, started = 0, time.perf_counter()
    model.train()
    for _ in range(config.epochs):
        order = torch.randperm(len(corpus), generator=generator)
        for start in range(0, len(corpus), config.batch_size):
            tokens, lengths, tags, intents = corpus.batch(order[start : start + config.batch_size])
            draw = torch.rand(tokens.shape, generator=generator)
            unknown = draw < torch.where(tags > 0, config.value_dropout, config.word_dropout)
            unspelt = None
            if config.char_filters > 0:  # (drawn only then, so a tagger without spelling fits as it always did)
                unspelt = unknown & (torch.rand(tokens.shape, generator=generator) < config.spelling_dropout)
            tag_loss, intent_loss = model.loss(tokens, lengths, tags, intents, unknown, unspelt)
            loss = tag_loss + intent_loss
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
            optimizer.step()
            step += 1
            if step % config.log_interval == 0 or step == total:
                logger.scalars(
                    {"train/loss": loss.item(), "train/tag_loss": tag_loss.item(), "train/intent_loss": intent_loss.item(),
                     "time/sentences_per_s": step * config.batch_size / (time.perf_counter() - started)},
                    step,
                )  # fmt: skip
    model.eval()
    scores = {}
    for name, held in evaluation_sets(domain, config.eval_size, seed + 1000).items():
        for key, value in evaluate(model, held).items():
            scores[f"{name}/{key}"] = value
    logger.scalars({f"eval/{key}": value for key, value in scores.items()}, step)
    logger.hparams({"domain": domain, "seed": seed, **dataclasses.asdict(config)}, scores)
    logger.close()
    return model, scores


# ----------------------------------------------------------------------------- saving and loading
def save_tagger(model: torch.nn.Module, path: str | Path, extra: dict[str, Any] | None = None) -> Path:
    """Save a tagger (its spec, the words it knows and its weights) as an rlcourse NLU checkpoint."""
    spec = dataclasses.asdict(model.spec)
    spec = {k: list(v) if isinstance(v, tuple) else v for k, v in spec.items()}
    known = model.features.word_map == torch.arange(len(model.spec.vocabulary))
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    return save_nlu(path, model.spec.model, {"spec": spec, "known": known, "state_dict": state, **(extra or {})})


def load_tagger(payload: dict[str, Any], device: torch.device) -> torch.nn.Module:
    """Rebuild a tagger from a saved payload (the loader behind ``rlcourse.nlu.load_nlu``)."""
    try:
        raw = dict(payload["spec"])
        spec = TaggerSpec(**{k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()})
        model = build_tagger(spec, payload["known"])
        model.load_state_dict(payload["state_dict"])
    except (KeyError, TypeError, RuntimeError) as error:
        raise CheckpointError(f"the saved NLU does not fit its model ({type(error).__name__}: {error})") from None
    model = model.to(device).eval()
    for module in model.modules():
        if isinstance(module, torch.nn.LSTM):
            module.flatten_parameters()  # one weight block per LSTM on the GPU (cuDNN would copy them every call)
    return model


def register() -> None:
    """The ``rlcourse.nlu`` entry point: teach :func:`rlcourse.nlu.load_nlu` this package's tagger kinds."""
    from rlcourse.nlu import register_nlu_loader

    for kind in MODELS:
        register_nlu_loader(kind, load_tagger)
