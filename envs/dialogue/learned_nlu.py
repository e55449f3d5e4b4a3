"""The env's ear when a learned NLU listens: user act -> English words (with word noise) -> tagger -> act.

``SlotFillingVecEnv(nlu="learned:PATH")`` loads a saved tagger through the core
(:func:`rlcourse.nlu.load_nlu`: the env knows no tagger class), and ``nlu=<object>`` takes any object that
fits :class:`rlcourse.nlu.UtteranceParser`. Either way the parser must have been fitted on this
domain's words and tags (checked by name). Then every user turn is

1. said as token ids by :class:`~rlcourse.envs.dialogue.speech.Speech` (a paraphrase drawn per
   phrase unless ``paraphrase=False``, each word misspelt with probability ``word_typo`` and dropped
   with ``word_drop``);
2. tagged by the parser (intent, BIO tags, a confidence per turn);
3. read back into the act the system hears; the confidence of every slot it heard is the parser's.

The word noise has its own generator (seeded from the env's seed), so the goals and replies of a
seeded env are the same whichever NLU listens: with a perfect parser the belief is the ``clean``
preset's. Everything is batched on the env's device, with no host reads.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch

from rlcourse.envs.dialogue.domain import Domain
from rlcourse.envs.dialogue.lexicon import Lexicon
from rlcourse.envs.dialogue.nlu import ABSENT
from rlcourse.envs.dialogue.speech import INTENTS, Speech
from rlcourse.nlu import check_parser, load_nlu

LEARNED_PREFIX = "learned:"
#: Mixed into the env's seed to seed the word-noise generator (any fixed odd number would do).
_SPEECH_SEED = 0x5EED15


@dataclass(frozen=True)
class WordNoise:
    """Per-word noise on what the user says: misspelt words (``<unk>``), dropped words, paraphrases."""

    typo: float = 0.0
    drop: float = 0.0
    paraphrase: bool = True

    def __post_init__(self):
        for name in ("typo", "drop"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
                raise ValueError(f"word_{name} must be a number in [0, 1), got {value!r}")
        if not isinstance(self.paraphrase, bool):
            raise ValueError(f"paraphrase must be true or false, got {self.paraphrase!r}")


def is_learned(nlu: Any) -> bool:
    """Whether an ``nlu`` option asks for a learned NLU (``learned:PATH`` or a parser object)."""
    return not isinstance(nlu, str) or nlu.startswith(LEARNED_PREFIX)


def resolve_parser(nlu: Any, device: torch.device) -> Any:
    """The parser an ``nlu`` option names: loaded from ``learned:PATH``, or the object itself."""
    if isinstance(nlu, str):
        path = nlu[len(LEARNED_PREFIX) :]
        if not path:
            raise ValueError("nlu=learned:PATH needs the path of a saved NLU (`rlcourse fit nlu` writes one)")
        return load_nlu(path, device)
    return nlu


class LearnedEar:
    """Say, parse and read a batch of user acts (see the module docstring)."""

    def __init__(self, parser: Any, domain: Domain, device: torch.device, noise: WordNoise):
        self.lexicon = Lexicon(domain)
        self.parser = check_parser(
            parser, self.lexicon.vocabulary, self.lexicon.tags, INTENTS, f"the {domain.name!r} dialogue domain"
        )
        self.speech = Speech(self.lexicon, device, "all" if noise.paraphrase else "canonical")
        self.noise = noise
        self.device = torch.device(device)
        self.generator = torch.Generator(device=device)
        self.generator.manual_seed(_SPEECH_SEED)
        self.typo = torch.tensor(float(noise.typo), device=device)
        self.drop = torch.tensor(float(noise.drop), device=device)
        self.silent = torch.tensor(0.0, device=device)

    def seed(self, seed: int) -> None:
        self.generator.manual_seed((int(seed) * 1_000_003 + _SPEECH_SEED) % 2**63)

    def hear(self, intent: torch.Tensor, inform: torch.Tensor, request: torch.Tensor):
        """``(heard intent [B], heard inform [B, S], heard requests [B, R], confidence [B, S], tokens, lengths)``."""
        draws = self.speech.draw(intent.shape[0], self.generator)
        tokens, lengths, tags = self.speech.say(intent, inform, request, draws, self.typo, self.drop)
        #: the last turn's intent and gold tags: what a perfect tagger would hear (for tests and oracles)
        self.gold = (intent, tags)
        width = tokens.shape[1]
        if self.device.type == "cpu" and not torch.compiler.is_compiling():
            # On the CPU a host read is free, and most turns are far shorter than the longest one there can be.
            width = max(int(lengths.max()), 1)
        heard_intent, tags, confidence = self.parser.parse(tokens[:, :width], lengths)
        tags = torch.nn.functional.pad(tags, (0, tokens.shape[1] - width))
        heard_inform, heard_request = self.speech.read(tokens, lengths, tags)
        slot_confidence = torch.where(heard_inform != ABSENT, confidence.float()[:, None], self.silent)
        return heard_intent.long(), heard_inform, heard_request, slot_confidence, tokens, lengths


def measure_steps_per_second(
    nlu: str, num_envs: int = 65536, device: str = "cuda", steps: int = 200, graph: bool = True, **options: Any
) -> dict[str, Any]:
    """Steps/s of ``rlcourse/SlotFilling-v0`` hearing through ``nlu`` (e.g. ``learned:PATH``), acting uniformly among
    the allowed acts. With ``graph`` on CUDA the step is captured once as a CUDA graph and replayed (a capture
    that fails falls back to eager steps, and the result says so)."""
    from rlcourse.envs.dialogue.slot_filling import SlotFillingVecEnv

    env = SlotFillingVecEnv(num_envs, device=device, nlu=nlu, **options)
    env.reset(seed=0)
    generator = torch.Generator(device=env.device).manual_seed(1)
    scores = torch.rand(num_envs, env.num_actions, generator=generator, device=env.device)

    def act() -> torch.Tensor:
        return torch.where(env.action_masks(), scores, -1.0).argmax(1)

    for _ in range(3):  # warm-up (allocator, cuDNN plans)
        env.step(act())
    mode = "eager"
    run = lambda: env.step(act())  # noqa: E731
    if graph and env.device.type == "cuda":
        try:
            stream = torch.cuda.Stream()
            stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(stream):
                env.step(act())
            torch.cuda.current_stream().wait_stream(stream)
            captured = torch.cuda.CUDAGraph()
            captured.register_generator_state(env.generator)
            if env.ear is not None:
                captured.register_generator_state(env.ear.generator)
            with torch.cuda.graph(captured):
                env.step(act())
            run, mode = captured.replay, "cuda-graph"
        except Exception as error:  # measured, not assumed: report the eager number and why
            mode = f"eager (graph capture failed: {type(error).__name__}: {str(error).splitlines()[0][:120]})"
    if env.device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        run()
    if env.device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    return {"steps_per_s": num_envs * steps / seconds, "num_envs": num_envs, "steps": steps, "mode": mode}
