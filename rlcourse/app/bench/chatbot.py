"""``rlcourse bench --suite chatbot``: the chatbot's three training steps, measured (notes:14242-14260 [Imitation Learning]).

Per seed, on ``rlcourse/Chatbot-v0``:

1. **MLE**: the GRU language model by teacher forcing on the train split (test perplexity);
2. **preference model**: a Bradley–Terry reward model on (human reply, worse reply) pairs built from the corpus
   (dull, shuffled and MLE-sampled rejected replies), scored by pairwise accuracy on the validation split;
3. **RL**: PPO from the MLE weights against the rule rewards plus the preference score, with the per-token KL
   penalty to the MLE model (the preset of ``ppo.yml``), then the same on the self-play env.

Each policy (MLE, RL) is scored on replies to the validation contexts, greedy and sampled: the dull and repeat
rates, distinct-1/2, the reply length, the preference score, the KL to the MLE model per token, and in
self-play the turns a conversation lasts before its first dull or repeated turn (Li et al. 2016: 2.68 → 4.48).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from rlcourse.agents import PPO
from rlcourse.app.bench.report import num, spread, table
from rlcourse.config import RUN_KEYS, load_preset
from rlcourse.envs.chatbot.corpus import observation_layout
from rlcourse.envs.chatbot.metrics import play_replies
from rlcourse.registry import make_vec
from rlcourse.supervised.chat.language_model import ChatLanguageModel, fit_mle
from rlcourse.supervised.chat.preference import (
    PreferenceRewardModel,
    fit_preference,
    mixed_preference_pairs,
    without_ties,
)
from rlcourse.supervised.reward import ModelReward

ENV_ID = "rlcourse/Chatbot-v0"
#: Replies each policy is scored on, and the seed of the contexts they answer.
EVAL_REPLIES = 1000
EVAL_SEED = 4321
SELF_PLAY_TURNS = 8
#: Budgets per device type: MLE and preference epochs, RL env steps (each of the two RL runs), envs.
BUDGETS = {
    "cpu": {"lm_epochs": 6, "preference_epochs": 4, "rl_steps": 65_536, "num_envs": 64, "eval_replies": EVAL_REPLIES},
    "cuda": {
        "lm_epochs": 6,
        "preference_epochs": 4,
        "rl_steps": 1_048_576,
        "num_envs": 1024,
        "eval_replies": EVAL_REPLIES,
    },
}
THROUGHPUT_ENVS = {"cpu": (64,), "cuda": (4096, 16384, 65536)}


def budget_for(device: torch.device, overrides: dict[str, int | None]) -> dict[str, int]:
    """The device's default budget with the given (non-None) values in its place."""
    budget = dict(BUDGETS["cuda" if device.type == "cuda" else "cpu"])
    budget.update({key: value for key, value in overrides.items() if value is not None})
    return budget


def _policy_of(agent: PPO, greedy: bool) -> Callable:
    return lambda obs, masks: agent.predict(obs, deterministic=greedy, action_masks=masks)


def _lm_policy(lm: ChatLanguageModel, greedy: bool, seed: int) -> Callable:
    generator = torch.Generator(device=lm.device).manual_seed(seed)
    return lambda obs, masks: lm.act(obs, masks, generator, greedy=greedy)


@torch.no_grad()
def _kl_per_token(policy_lm: ChatLanguageModel, reference: ChatLanguageModel, observations: torch.Tensor) -> float:
    """Mean over the replies' tokens of log π(x_t) − log π_ref(x_t): the sampled estimate of KL(π‖π_ref) per token.

    π and π_ref are the distributions the env lets each sample from (its masks: no PAD, BOS or UNK, no EOS first),
    the ones the penalty of ``train/ref_kl`` compares. The networks' unmasked ones could differ by the mass each
    gives the masked tokens, whose logits no RL sample ever trains."""
    picked, mask = policy_lm.token_log_probs(observations, env_masks=True)
    ref_picked, _ = reference.token_log_probs(observations, env_masks=True)
    return float(((picked - ref_picked) * mask).sum() / mask.sum().clamp_min(1))


def _score(env_options: dict[str, Any], policy: Callable, as_lm: ChatLanguageModel, reference: ChatLanguageModel,
           preference: PreferenceRewardModel, device: torch.device, replies: int) -> dict[str, float]:  # fmt: skip
    """A policy's replies to the validation contexts (sampled and greedy), and its self-play conversations."""
    scores: dict[str, float] = {}
    for mode, greedy in (("sampled", False), ("greedy", True)):
        env = make_vec(ENV_ID, 1, device, split="valid", **env_options)
        played = play_replies(env, policy(greedy), replies, seed=EVAL_SEED)
        observations = played.pop("observations")
        played["preference"] = float(preference.score(observations).mean())
        played["kl_to_mle"] = _kl_per_token(as_lm, reference, observations)
        scores.update({f"{mode}/{key}": value for key, value in played.items()})
        talk = make_vec(ENV_ID, 1, device, split="valid", self_play_turns=SELF_PLAY_TURNS, **env_options)
        scores[f"{mode}/self_play_turns"] = _mean_turns(talk, policy(greedy), max(replies // 5, 2))
    return scores


@torch.no_grad()
def _mean_turns(env: Any, policy: Callable, conversations: int) -> float:
    """Mean turns of self-play conversations before the first dull or repeated turn (or the turn limit)."""
    env = env.spawn(conversations)
    obs, _ = env.reset(seed=EVAL_SEED)
    turns = torch.zeros(conversations, device=env.device)
    finished = torch.zeros(conversations, dtype=torch.bool, device=env.device)
    while not bool(finished.all()):
        obs, _, _, _, info = env.step(policy(obs, env.action_masks()))
        ended = info["conversation_over"] & ~finished
        # a conversation cut by a dull or repeated turn lasted the turns before it
        lasted = info["turns"] - (info["dull"] | info["repeat"]).long()
        turns = torch.where(ended, lasted.float(), turns)
        finished |= info["conversation_over"]
    return float(turns.mean())


def _as_language_model(agent: PPO, like: ChatLanguageModel) -> ChatLanguageModel:
    """The agent's GRU and head as a :class:`ChatLanguageModel` (to score its replies' likelihood)."""
    lm = ChatLanguageModel(like.observation_space, like.action_space, like.config).to(like.device)
    lm.lm.load_state_dict(agent.policy.lm.state_dict())
    return lm


def seed_rows(device: torch.device, seed: int, budget: dict[str, int], folder: Path, say: Callable[[str], None]):
    """The MLE, preference and RL results of one seed."""
    torch.manual_seed(seed)
    env = make_vec(ENV_ID, 1, device)
    corpus = env.unwrapped.corpus
    preset = {k: v for k, v in load_preset("ppo", ENV_ID).items() if k not in RUN_KEYS}
    embed_dim, hidden_dim = preset["net_arch"]
    lm = ChatLanguageModel.for_env(env, {"embed_dim": embed_dim, "hidden_dim": hidden_dim}).to(device)
    layouts = {split: observation_layout(*corpus.split(split)).to(device) for split in ("train", "valid", "test")}
    started = time.perf_counter()
    fit_mle(lm, layouts["train"], layouts["valid"], epochs=budget["lm_epochs"], seed=seed)
    row: dict[str, Any] = {"seed": seed, "mle_seconds": time.perf_counter() - started}
    row["test_perplexity"] = lm.perplexity(layouts["test"])
    say(f"  seed {seed}: MLE test perplexity {row['test_perplexity']:.1f}")

    generator = torch.Generator(device=device).manual_seed(seed)
    dull = env.unwrapped.dull_replies.to(device)
    pairs = {}
    for split in ("train", "valid"):
        contexts, replies = (part.to(device) for part in corpus.split(split))
        sampler = lambda c: lm.sample(c, corpus.reply_len, generator)  # noqa: E731
        pairs[split] = without_ties(*mixed_preference_pairs(contexts, replies, generator, dull, sampler))
    preference = PreferenceRewardModel.for_env(env).to(device)
    history = fit_preference(preference, pairs["train"], pairs["valid"], epochs=budget["preference_epochs"], seed=seed)
    row["preference_accuracy"] = max(history["valid_accuracy"])
    say(f"  seed {seed}: preference pairwise accuracy {row['preference_accuracy']:.3f}")
    preference.requires_grad_(False)

    row["mle"] = _score(
        {}, lambda greedy: _lm_policy(lm, greedy, seed), lm, lm, preference, device, budget["eval_replies"]
    )
    lm_file = lm.save(folder / f"lm-{seed}.pt")
    for name, options in (("rl", {}), ("rl_self_play", {"self_play_turns": SELF_PLAY_TURNS})):
        rewarded = ModelReward(make_vec(ENV_ID, budget["num_envs"], device, **options), preference, mode="add")
        agent = PPO(rewarded, seed=seed, device=device, batch_size=scaled_batch_size(budget["num_envs"]))
        agent.init_from(lm_file)
        started = time.perf_counter()
        agent.learn(total_timesteps=budget["rl_steps"])
        seconds = time.perf_counter() - started
        as_lm = _as_language_model(agent, lm)
        row[name] = {
            **_score(
                {},
                lambda greedy, agent=agent: _policy_of(agent, greedy),
                as_lm,
                lm,
                preference,
                device,
                budget["eval_replies"],
            ),
            "tokens_per_s": agent.num_timesteps / seconds,
            "seconds": seconds,
            "train_ref_kl": agent.last_log.get("train/ref_kl"),
        }
        say(f"  seed {seed}: {name} {agent.num_timesteps:,} tokens in {seconds:.0f} s")
    return row


def scaled_batch_size(num_envs: int) -> int:
    """The preset's minibatch grown with the env count, so a larger batch of envs takes as many optimizer steps
    per rollout as the preset's (each on proportionally more samples)."""
    preset = load_preset("ppo", ENV_ID)
    return min(preset["batch_size"] * max(1, num_envs // preset["num_envs"]), num_envs * preset["n_steps"])


def throughput_rows(device: torch.device, num_envs_list: tuple[int, ...], say: Callable[[str], None]) -> list[dict]:
    """Generated tokens per second of RL fine-tuning (rollout, KL to the reference, PPO update) at each env count."""
    rows = []
    for num_envs in num_envs_list:
        batch = scaled_batch_size(num_envs)
        agent = PPO(make_vec(ENV_ID, num_envs, device), seed=0, device=device, batch_size=batch)
        agent.learn(total_timesteps=agent.steps_per_iteration)  # warm-up
        started = time.perf_counter()
        agent.learn(total_timesteps=3 * agent.steps_per_iteration)
        seconds = time.perf_counter() - started
        rows.append(
            {"num_envs": num_envs, "batch_size": batch, "tokens_per_s": 3 * agent.steps_per_iteration / seconds}
        )
        say(f"  {num_envs:,} envs: {rows[-1]['tokens_per_s']:,.0f} tokens/s")
    return rows


def run_chatbot_bench(
    device: torch.device,
    seeds: int,
    budget: dict[str, int],
    say: Callable[[str], None],
    throughput_envs: tuple[int, ...] | None = None,
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        rows = [seed_rows(device, seed, budget, Path(folder), say) for seed in range(seeds)]
    envs = throughput_envs or THROUGHPUT_ENVS["cuda" if device.type == "cuda" else "cpu"]
    return {"budget": budget, "seeds": rows, "throughput": throughput_rows(device, envs, say)}


METRICS = (
    ("dull_rate", "dull rate", 3),
    ("repeat_rate", "repeat rate", 3),
    ("distinct_1", "distinct-1", 3),
    ("distinct_2", "distinct-2", 3),
    ("reply_length", "words per reply", 2),
    ("preference", "preference score", 2),
    ("kl_to_mle", "KL to MLE per token", 3),
    ("self_play_turns", "self-play turns", 2),
)


def render_chatbot_markdown(report: dict[str, Any], meta: dict[str, Any]) -> str:
    rows, budget = report["seeds"], report["budget"]
    lines = [
        f"# rlcourse bench: chatbot — {meta['device_name']}, {meta['date']}",
        "",
        f"{len(rows)} seeds; MLE {budget['lm_epochs']} epochs, preference model {budget['preference_epochs']} epochs, "
        f"PPO {budget['rl_steps']:,} tokens on {budget['num_envs']} envs per RL run; {budget['eval_replies']} replies to "
        f"validation contexts per policy, {SELF_PLAY_TURNS}-turn self-play. Mean [min–max] over seeds.",
        "",
        f"Test perplexity of the MLE model: {spread([r['test_perplexity'] for r in rows], 1)}; preference model's "
        f"held-out pairwise accuracy: {spread([r['preference_accuracy'] for r in rows], 3)}.",
        "",
    ]
    for mode in ("sampled", "greedy"):
        body = [
            [label]
            + [spread([r[policy][f"{mode}/{key}"] for r in rows], digits) for policy in ("mle", "rl", "rl_self_play")]
            for key, label, digits in METRICS
        ]
        lines += [f"## Replies, {mode} decoding", ""]
        lines += table(["", "MLE", "PPO (single replies)", "PPO (self-play)"], body) + [""]
    body = [[num(r["num_envs"]), num(r["batch_size"]), num(r["tokens_per_s"])] for r in report["throughput"]]
    lines += ["## Throughput of RL fine-tuning (rollout + KL to the reference + PPO update)", ""]
    lines += table(["envs", "minibatch", "tokens/s"], body) + [""]
    return "\n".join(lines)
