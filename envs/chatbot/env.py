"""``rlcourse/Chatbot-v0``: generate a reply to a corpus context, one token per step.

The course's framing (notes:10482-10602 [Sequence Generation by GAN]): a chatbot θ sees a context c and
produces a reply x with probability P_θ(x|c); a reward R(c, x) judges the whole reply, and training
maximises E_{c~P(c), x~P_θ(x|c)}[R(c, x)] with the policy gradient. Here every token is an action and a
reply is an episode (notes:14242-14260 [Imitation Learning]).

* **Observation** ``[C + 1 + R]`` int64 token ids: the context left-padded with PAD (its last C tokens),
  BOS, then the reply so far right-padded with PAD (the layout of :mod:`~rlcourse.envs.chatbot.corpus`).
* **Action** the next token, ``Discrete(vocab)``; :meth:`action_masks` forbids PAD, BOS and UNK always, and
  EOS as the first token (a reply has at least one word).
* **Ending** at EOS or after R tokens: a reply ends there by the task's definition, so both are
  ``terminated`` (never truncated: :attr:`truncates` is False, and agents need not bootstrap).
* **Reward** at the step the reply ends, from hand-written rules in the spirit of notes:10604-10618 [Sequence Generation by GAN]
  ("saying 'I don't know' gets a negative reward; an infinite loop gets a negative reward"): minus
  ``dull_penalty`` for a reply in the list of dull replies, minus ``repeat_penalty`` for repeating the
  context or looping on one word. Learned rewards (a preference model, a SeqGAN discriminator, Li et
  al.'s) come from plug-ins through :class:`~rlcourse.supervised.ModelReward`, replacing or adding to these.
* **Outcomes** per reply: ``dull`` and ``repeat`` (so agents log ``rollout/dull_rate``).

Contexts are drawn uniformly from one split of the corpus (``split``: train by default, valid or test for
held-out evaluation), so the env's own generator makes every episode reproducible.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from gymnasium import spaces

from rlcourse.envs.chatbot.corpus import SPLITS, ChatCorpus, context_as_reply, reply_as_context
from rlcourse.envs.chatbot.metrics import ReplyStatistics
from rlcourse.envs.chatbot.tokenizer import WordTokenizer, check_tokenizer_name
from rlcourse.vec_env import TensorVecEnv

PAD, BOS, EOS, UNK = WordTokenizer.PAD, WordTokenizer.BOS, WordTokenizer.EOS, WordTokenizer.UNK
#: Tokens a reply never contains: the layout's own (PAD, BOS) and UNK, so a reply says only words it knows.
NEVER_GENERATED = (PAD, BOS, UNK)


def allowed_tokens(first: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """``[..., vocab]`` bool: the tokens a reply may take next, where ``first`` ``[...]`` marks its first token.

    The env's action mask and the KL the bench measures use this one rule: never PAD, BOS or UNK, and no EOS
    as the first token (a reply says something).
    """
    allowed = torch.ones((*first.shape, int(vocab_size)), dtype=torch.bool, device=first.device)
    for token in NEVER_GENERATED:  # one int index each: no index tensor made from the host
        allowed[..., token] = False
    allowed[..., EOS] = ~first
    return allowed


#: Generic replies that end a conversation's content (Li et al. 2016's list and the notes' "I don't know" /
#: "I'm sorry", notes:10798-10818 [Sequence Generation by GAN]), and short content-free replies.
DULL_REPLIES = (
    "i don't know.",
    "i don't know",
    "i do not know.",
    "i don't know what you are talking about.",
    "i'm sorry.",
    "i am sorry.",
    "i'm not sure.",
    "you don't know.",
    "i know what you mean.",
    "you know what i mean.",
    "ok.",
    "okay.",
    "yes.",
    "no.",
    "yes",
    "no",
)
#: A word said this many times in a row is a loop.
LOOP_LENGTH = 3


@functools.lru_cache(maxsize=8)
def cached_corpus(
    source: str | None,
    context_len: int,
    reply_len: int,
    min_count: int,
    seed: int,
    tokenizer: str = "word",
    bpe_vocab_size: int | None = None,
) -> ChatCorpus:
    """The corpus an env of these options reads (built once per process: evaluation copies share it)."""
    return ChatCorpus.build(
        source,
        context_len=context_len,
        reply_len=reply_len,
        min_count=min_count,
        seed=seed,
        tokenizer=tokenizer,
        bpe_vocab_size=bpe_vocab_size,
    )


class ChatbotVecEnv(TensorVecEnv):
    """Batched token-by-token reply generation on the chatterbot corpus (or one's own; see :func:`load_conversations`).

    Args:
        corpus: a corpus file or folder, or None for the installed ``chatterbot-corpus`` (English).
        context_len, reply_len: C and R of the observation layout.
        min_count: a word is in the vocabulary if it occurs this often in the train split (``tokenizer="word"``).
        tokenizer: ``"word"`` (words and punctuation, held-out words UNK) or ``"bpe"`` (byte-level BPE learnt on
            the train split, :mod:`~rlcourse.envs.chatbot.bpe`; needs the ``tokenizers`` package).
        bpe_vocab_size: the BPE vocabulary size, specials included (None: its default); only with ``"bpe"``.
        split: where contexts are drawn from: ``train``, ``valid`` or ``test``.
        corpus_seed: the seed of the split by conversation (the same for every env of a run).
        dull_penalty, repeat_penalty: the rule rewards' sizes (>= 0).
        self_play_turns: 0 for one reply per episode; K > 0 for self-play, below.

    **Self-play** (``self_play_turns=K``): two bots talking, the setting of notes:10604-10618 [Sequence Generation by GAN]
    and of Li et al. 2016, whose two simulated speakers share one policy. Each turn is one episode (one reply, its
    rewards at its end, so reward plug-ins score every turn's finished reply in ``final_obs``), and each finished
    reply becomes the next turn's context, which the same policy answers. The conversation ends at its first dull
    or repeated turn (repeating the other speaker, or the turn before that one) or after K turns; then a new one
    starts from a corpus context. ``info["conversation_over"]`` marks the turns that end one and ``info["turns"]``
    counts its turns, the measure Li et al. report. The observation shows neither the turn count nor the turn
    before: a policy answers what it was just told.
    """

    metadata: ClassVar[dict[str, Any]] = {**TensorVecEnv.metadata, "render_modes": ["ansi"]}
    outcome_keys = ("dull", "repeat")
    has_action_masks = True
    has_transcripts = True
    truncates = False
    state_names = ("context", "reply", "length", "earlier", "turn", "goes_on")

    def __init__(
        self,
        num_envs: int = 1,
        device: str | torch.device = "cpu",
        validate: bool = False,
        render_mode: str | None = None,
        corpus: str | None = None,
        context_len: int = 16,
        reply_len: int = 16,
        min_count: int = 1,
        tokenizer: str = "word",
        bpe_vocab_size: int | None = None,
        split: str = "train",
        corpus_seed: int = 0,
        dull_penalty: float = 1.0,
        repeat_penalty: float = 1.0,
        self_play_turns: int = 0,
    ):
        if split not in SPLITS:
            raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
        for name, value in (("dull_penalty", dull_penalty), ("repeat_penalty", repeat_penalty)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
                raise ValueError(f"{name} must be a number >= 0, got {value!r}")
        if isinstance(self_play_turns, bool) or not isinstance(self_play_turns, int) or self_play_turns < 0:
            raise ValueError(
                f"self_play_turns must be an integer >= 0 (0: one reply per episode), got {self_play_turns!r}"
            )
        self.self_play_turns = self_play_turns
        source = None if corpus is None else str(Path(corpus))
        if check_tokenizer_name(tokenizer) == "bpe" and bpe_vocab_size is None:
            from rlcourse.envs.chatbot.bpe import DEFAULT_VOCAB_SIZE

            bpe_vocab_size = DEFAULT_VOCAB_SIZE  # recorded, so a run's env is rebuilt alike if the default changes
        self.corpus = cached_corpus(
            source, int(context_len), int(reply_len), int(min_count), int(corpus_seed), tokenizer, bpe_vocab_size
        )
        self.tokenizer = self.corpus.tokenizer
        self.context_len, self.reply_len = self.corpus.context_len, self.corpus.reply_len
        self._options = {
            "corpus": source,
            "context_len": self.context_len,
            "reply_len": self.reply_len,
            "min_count": int(min_count),
            "tokenizer": tokenizer,
            "bpe_vocab_size": bpe_vocab_size,
            "split": split,
            "corpus_seed": int(corpus_seed),
            "dull_penalty": float(dull_penalty),
            "repeat_penalty": float(repeat_penalty),
            "self_play_turns": self_play_turns,
        }
        vocab = self.tokenizer.vocab_size
        length = self.context_len + 1 + self.reply_len
        self.single_observation_space = spaces.Box(0, vocab - 1, shape=(length,), dtype=np.int64)
        self.single_action_space = spaces.Discrete(vocab)
        super().__init__(num_envs, device, validate, render_mode)
        self.contexts = self.corpus.split(split)[0].to(self.device)
        self.dull_replies = self._encode_replies(DULL_REPLIES)
        self.dull_penalty, self.repeat_penalty = float(dull_penalty), float(repeat_penalty)
        self.context = torch.full((self.num_envs, self.context_len), PAD, dtype=torch.int64, device=self.device)
        self.reply = torch.full((self.num_envs, self.reply_len), PAD, dtype=torch.int64, device=self.device)
        self.length = torch.zeros(self.num_envs, dtype=torch.int64, device=self.device)
        self.earlier = torch.full_like(self.context, PAD)  # self-play: the context of the turn before
        self.turn = torch.zeros(self.num_envs, dtype=torch.int64, device=self.device)
        self.goes_on = torch.zeros(
            self.num_envs, dtype=torch.bool, device=self.device
        )  # self-play: a next turn follows
        self._bos = torch.full((self.num_envs, 1), BOS, dtype=torch.int64, device=self.device)
        self._positions = torch.arange(self.reply_len, device=self.device)
        #: The reply each sub-env finished last (what :class:`~.metrics.ReplyStatistics` logs), PAD until one is.
        self.last_replies = torch.full_like(self.reply, PAD)
        self._statistics = ReplyStatistics(self)

    def _encode_replies(self, texts: tuple[str, ...]) -> torch.Tensor:
        """``[K, R]`` replies (right-padded, ending in EOS) of ``texts`` whose words are all in the vocabulary."""
        rows = []
        for text in texts:
            ids = self.tokenizer.encode(text)
            if ids and UNK not in ids and len(ids) < self.reply_len:
                rows.append(ids + [EOS] + [PAD] * (self.reply_len - len(ids) - 1))
        return torch.tensor(sorted(set(map(tuple, rows))), dtype=torch.int64, device=self.device).view(
            -1, self.reply_len
        )

    def options(self) -> dict[str, Any]:
        return dict(self._options)

    # ----------------------------------------------------------------- the contract's hooks
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        self.goes_on.zero_()  # a reset starts every conversation afresh
        return super().reset(seed=seed, options=options)

    def _reset_where(self, mask: torch.Tensor) -> None:
        """A new reply: to a fresh corpus context, or in self-play where the conversation goes on, to the reply just
        said (which becomes the context; the context before it is kept as the turn before)."""
        drawn = torch.randint(self.contexts.shape[0], (self.num_envs,), generator=self.generator, device=self.device)
        if self._selects_none(mask):
            return
        fresh, goes_on = (mask & ~self.goes_on).unsqueeze(1), (mask & self.goes_on).unsqueeze(1)
        spoken = reply_as_context(self.reply, self.context_len)
        self.earlier.copy_(torch.where(goes_on, self.context, torch.where(fresh, PAD, self.earlier)))
        self.context.copy_(torch.where(goes_on, spoken, torch.where(fresh, self.contexts[drawn], self.context)))
        self.reply.masked_fill_(mask.unsqueeze(1), PAD)
        self.length.masked_fill_(mask, 0)
        self.turn.masked_fill_(fresh.squeeze(1), 0)

    def _observe(self) -> torch.Tensor:
        return torch.cat((self.context, self._bos, self.reply), 1)

    def _transition(self, actions: torch.Tensor):
        tokens = actions.long()
        at_end = self._positions.unsqueeze(0) == self.length.unsqueeze(1)
        self.reply.copy_(torch.where(at_end, tokens.unsqueeze(1), self.reply))
        self.length += 1
        reply_done = (tokens == EOS) | (self.length >= self.reply_len)
        self.last_replies.copy_(torch.where(reply_done.unsqueeze(1), self.reply, self.last_replies))
        dull, repeat = self._judge(self.reply)
        dull, repeat = dull & reply_done, repeat & reply_done
        reward = -(self.dull_penalty * dull.float() + self.repeat_penalty * repeat.float())
        info = {"reply_length": torch.where(reply_done, self.length, 0)}
        if self.recording:  # what render_turn shows
            info["said"] = self.reply.clone()
        info.update(dull=dull, repeat=repeat)
        if self.self_play_turns:
            # Self-play: the conversation ends at its first dull or repeated turn, or after self_play_turns turns;
            # otherwise _reset_where makes the reply the context of the next turn, which the same policy speaks.
            self.turn += reply_done.long()
            over = reply_done & (dull | repeat | (self.turn >= self.self_play_turns))
            self.goes_on.copy_(reply_done & ~over)
            info.update(conversation_over=over, turns=self.turn.clone())
        return reward, reply_done, torch.zeros_like(reply_done), info

    def _judge(self, reply: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Whether each (finished) reply is a dull one, and whether it repeats the context or loops on a word."""
        dull = (reply.unsqueeze(1) == self.dull_replies.unsqueeze(0)).all(-1).any(-1)
        windows = reply.unfold(1, min(LOOP_LENGTH, self.reply_len), 1)  # [B, R - LOOP_LENGTH + 1, LOOP_LENGTH]
        is_word = (windows[..., 0] != PAD) & (windows[..., 0] != EOS)
        loops = ((windows == windows[..., :1]).all(-1) & is_word).any(-1) & (self.reply_len >= LOOP_LENGTH)
        repeats = self._repeats(reply, self.context) | self._repeats(reply, self.earlier) & (self.turn > 0)
        return dull, repeats | loops

    def _repeats(self, reply: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """Whether each reply says exactly ``context``'s words (then EOS, where the reply has room for one)."""
        return (reply == context_as_reply(context, self.reply_len)).all(-1)

    # ----------------------------------------------------------------- declared abilities
    def training_callbacks(self) -> list[ReplyStatistics]:
        """The callback that logs distinct-1/2 and the reply length of every rollout (:mod:`.metrics`)."""
        return [self._statistics]

    def action_masks(self) -> torch.Tensor:
        return allowed_tokens(self.length == 0, self.single_action_space.n)

    @property
    def action_names(self) -> tuple[str, ...]:
        return self.tokenizer.words

    def decode(self, tokens: torch.Tensor) -> str:
        """One row of token ids (a context or a reply) as text."""
        return self.tokenizer.decode(tokens.tolist())

    def render_opening(self, index: int = 0) -> list[str]:
        return [f"user: {self.decode(self.context[index])}"]

    def render_turn(self, info: dict[str, Any], index: int = 0) -> list[str]:
        """The reply finished in the last ``step`` of sub-env ``index``, if one was (needs :attr:`recording`)."""
        if "said" not in info:
            raise ValueError("render_turn needs the step to be taken with env.recording = True")
        if not bool(info["reply_length"][index]):
            return []
        speaker = "bot" if not self.self_play_turns else ("bot A", "bot B")[(int(info["turns"][index]) - 1) % 2]
        flags = [name for name in self.outcome_keys if bool(info[name][index])]
        text = self.decode(info["said"][index])
        return [f"{speaker}: {text}" + (f"   [{', '.join(flags)}]" if flags else "")]

    def play_transcripts(self, policy: Any, num_episodes: int, seed: int | None = None) -> list[str]:
        """``num_episodes`` replies (self-play: conversations) by ``policy(obs, action_masks)`` on a fresh copy, as text."""
        env = self.spawn(num_episodes)
        env.recording = True
        obs, _ = env.reset(seed=seed)
        lines = [env.render_opening(i) for i in range(num_episodes)]
        finished = torch.zeros(num_episodes, dtype=torch.bool)
        while not bool(finished.all()):
            obs, _, terminated, _, info = env.step(policy(obs, env.action_masks()))
            for i in range(num_episodes):
                if not finished[i]:
                    lines[i] += env.render_turn(info, i)
            finished |= (info["conversation_over"] if self.self_play_turns else terminated).cpu()
        return ["\n".join(episode) for episode in lines]
