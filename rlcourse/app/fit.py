"""``rlcourse fit``: fit a supervised plug-in and save it: ``nlu``, the dialogue's slot tagger; ``chat-lm``, the chatbot's
language model (MLE), which ``rlcourse train ppo rlcourse/Chatbot-v0 --init-from runs/chat_lm/gru/<name>/lm.pt``
fine-tunes with RL; ``preference``, the chatbot's Bradley–Terry reward model, which ``--hp reward_model=PATH`` adds
to the env's reward.

``rlcourse fit nlu --domain movie`` draws the domain's labelled corpus, trains the preset's tagger
(``rlcourse/presets/nlu.yml``; ``--hp key=value`` overrides), scores it on held-out values and templates,
and writes a run folder ``runs/nlu_<domain>/<model>/<name>/`` holding ``nlu.pt`` (the tagger, for
``--env-opt nlu=learned:PATH``), ``config.yaml``, ``eval.json`` and the TensorBoard events. Every input
is checked before the folder is claimed, and a bad one is one line and exit code 2.
"""

from __future__ import annotations

import inspect
import time
from pathlib import Path
from typing import Any

import click

from rlcourse.app.inputs import CONTEXT, run_dir_errors, runs_root_option
from rlcourse.config import DEFAULT_PRESET, config_to_dict, load_preset, make_config, parse_hp
from rlcourse.device import DEFAULT_THREADS, set_threads
from rlcourse.run_dir import RunDir, check_run_name

#: The file name of the fitted tagger inside its run folder.
NLU_FILE = "nlu.pt"


def run_options(command):
    """The options every fit shares: the seed, the run folder's name and root, and torch's threads."""
    for option in reversed((
        click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Seeds the data order and the network."),
        click.option("--name", default=None, help="Run folder name (default: seed<SEED>-<YYYYmmdd-HHMMSS>)."),
        runs_root_option,
        click.option("--threads", type=click.IntRange(min=1), default=DEFAULT_THREADS, show_default=True, help="torch's CPU threads."),
    )):  # fmt: skip
        command = option(command)
    return command


@click.group(context_settings=CONTEXT)
def fit_command() -> None:
    """Fit a supervised plug-in (the dialogue's slot-tagger NLU, the chatbot's language model and preference
    reward model) and save it."""


@fit_command.command("nlu", context_settings=CONTEXT)
@click.option(
    "--domain", default="movie", show_default=True, help="Dialogue domain: movie, restaurant, train, or a .json file."
)
@click.option(
    "--preset",
    default=DEFAULT_PRESET,
    show_default=True,
    metavar="NAME",
    help="Variant from rlcourse/presets/nlu.yml for the domain (default, word_mlp, env); 'none' for the built-in defaults.",
)
@click.option(
    "--hp", "hp_assignments", multiple=True, metavar="KEY=VALUE", help="Set a fit setting; repeatable (epochs=3)."
)
@run_options
@click.option("--progress/--no-progress", default=True, help="Show a progress bar.")
def fit_nlu(
    domain: str, preset: str, hp_assignments: tuple[str, ...], seed: int, name: str | None, runs_root: Path,
    threads: int, progress: bool,
) -> None:  # fmt: skip
    """Fit the dialogue env's slot tagger (BiLSTM+CRF, or the per-word MLP baseline) on DOMAIN and save it."""
    from rlcourse.envs.dialogue.domain import load_domain  # the heavy imports wait until the command runs
    from rlcourse.supervised.nlu import NluFitConfig, fit_tagger, save_tagger

    spec = load_domain(domain)  # an unknown domain is a one-line error before anything is written
    settings = {} if preset == "none" else _preset(spec.name, domain, preset)
    config = make_config(NluFitConfig, {**settings, **parse_hp(hp_assignments)})
    if name is not None:
        with run_dir_errors("--name"):
            check_run_name(name)
    set_threads(threads)
    with run_dir_errors("--runs-root"):
        run = RunDir.create(runs_root, f"nlu/{spec.name}", config.model, name, seed)
    record = {
        "fit": "nlu",
        "domain": domain,
        "seed": seed,
        "preset": preset,
        "threads": threads,
        **config_to_dict(config),
    }
    run.write_config(record)
    started = time.perf_counter()
    model, scores = fit_tagger(domain, config, seed=seed, run_dir=run.path, progress_bar=progress)
    path = save_tagger(model, run / NLU_FILE, extra={"fit": record})
    run.write_eval({"domain": spec.name, "model": config.model, "seconds": time.perf_counter() - started, **scores})
    for key, value in scores.items():
        click.echo(f"{key}: {value:.4f}")
    click.echo(f"saved {path}")
    click.echo(f"use it: rlcourse train ppo rlcourse/SlotFilling-v0 --env-opt nlu=learned:{path}")


def _preset(domain_name: str, domain: str, preset: str) -> dict:
    """The preset for a shipped domain; a domain file of another name gets the movie domain's variant."""
    try:
        return load_preset("nlu", domain_name, preset)
    except ValueError:
        if Path(domain).suffix == ".json":
            return load_preset("nlu", "movie", preset)
        raise


#: The file name of the fitted chat language model inside its run folder.
CHAT_LM_FILE = "lm.pt"


def chat_env_options(command):
    """The chatbot env's options a fit shares (corpus, lengths, tokenizer), as ``rlcourse train --env-opt`` names them."""
    for option in reversed((
        click.option("--corpus", default=None, metavar="PATH", help="A corpus file or folder (default: the installed chatterbot corpus)."),
        click.option("--context-len", type=click.IntRange(min=1), default=16, show_default=True, help="Context tokens C."),
        click.option("--reply-len", type=click.IntRange(min=2), default=16, show_default=True, help="Reply tokens R."),
        click.option("--min-count", type=click.IntRange(min=1), default=1, show_default=True, help="Occurrences a word needs to be kept."),
        click.option("--tokenizer", type=click.Choice(["word", "bpe"]), default="word", show_default=True, help="Words, or byte-level BPE."),
        click.option("--bpe-vocab-size", type=click.IntRange(min=1), default=None, help="BPE vocabulary size (default: the env's default)."),
    )):  # fmt: skip
        command = option(command)
    return command


def _chat_env(**options: Any) -> tuple[Any, dict[str, Any]]:
    """The chatbot env of the fit's options (a bad corpus or tokenizer option fails here, before anything is
    written), and the options with the BPE size the default stood for."""
    from rlcourse.envs.chatbot.env import ChatbotVecEnv

    env = ChatbotVecEnv(1, **options)
    return env, {**options, "bpe_vocab_size": env.options()["bpe_vocab_size"]}


def _recorded_env_options(env: Any) -> dict[str, Any]:
    """The env options a fit's config.yaml records."""
    keys = ("corpus", "context_len", "reply_len", "tokenizer", "bpe_vocab_size")
    return {k: v for k, v in env.options().items() if k in keys}


def _env_opt_hint(env_options: dict[str, Any]) -> str:
    """`` --env-opt k=v`` for every option that differs from the env's default (what ``train`` must be given)."""
    from rlcourse.envs.chatbot.env import ChatbotVecEnv

    defaults = {k: v.default for k, v in inspect.signature(ChatbotVecEnv.__init__).parameters.items()}
    return "".join(f" --env-opt {k}={v}" for k, v in env_options.items() if v != defaults.get(k, v) and v is not None)


@fit_command.command("chat-lm", context_settings=CONTEXT)
@chat_env_options
@click.option("--epochs", type=click.IntRange(min=1), default=10, show_default=True, help="Passes over the corpus.")
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True, help="Pairs per step.")
@click.option("--hp", "hp_assignments", multiple=True, metavar="KEY=VALUE", help="Set a model setting (embed_dim=64).")
@run_options
def fit_chat_lm(
    corpus: str | None, context_len: int, reply_len: int, min_count: int, tokenizer: str, bpe_vocab_size: int | None,
    epochs: int, batch_size: int, hp_assignments: tuple[str, ...], seed: int, name: str | None, runs_root: Path,
    threads: int,
) -> None:  # fmt: skip
    """Pre-train the chatbot's language model by maximum likelihood (teacher forcing), the policy RL starts from."""
    import torch

    from rlcourse.envs.chatbot.corpus import observation_layout
    from rlcourse.logger import RunLogger
    from rlcourse.supervised.chat.language_model import ChatLanguageModel, ChatLMConfig, fit_mle

    config = make_config(ChatLMConfig, parse_hp(hp_assignments))
    env, env_options = _chat_env(corpus=corpus, context_len=context_len, reply_len=reply_len, min_count=min_count,
                                 tokenizer=tokenizer, bpe_vocab_size=bpe_vocab_size)  # fmt: skip
    if name is not None:
        with run_dir_errors("--name"):
            check_run_name(name)
    set_threads(threads)
    torch.manual_seed(seed)
    model = ChatLanguageModel.for_env(env, config)  # it records the env's tokenizer (config.tokenizer)
    config = model.config
    with run_dir_errors("--runs-root"):
        run = RunDir.create(runs_root, "chat_lm", "gru", name, seed)
    record = {
        "fit": "chat-lm",
        **_recorded_env_options(env),
        "epochs": epochs,
        "batch_size": batch_size,
        "seed": seed,
        **config_to_dict(config),
    }
    run.write_config(record)
    train, valid, test = (observation_layout(*env.corpus.split(split)) for split in ("train", "valid", "test"))
    logger = RunLogger(run.path, epochs, progress_bar=False)
    started = time.perf_counter()
    history = fit_mle(
        model, train, valid, epochs, batch_size, seed, log=lambda tag, v, step: logger.scalars({tag: v}, step)
    )
    scores = {"valid_perplexity": min(history["valid_perplexity"]), "test_perplexity": model.perplexity(test)}
    path = model.save(run / CHAT_LM_FILE)
    logger.close()
    run.write_eval({"seconds": time.perf_counter() - started, **scores, "history": history})
    for key, value in scores.items():
        click.echo(f"{key}: {value:.2f}")
    click.echo(f"saved {path}")
    sizes = [config.embed_dim, config.hidden_dim]
    same = sizes == list(load_preset("ppo", "rlcourse/Chatbot-v0")["net_arch"])
    hint = f"--init-from {path}" + ("" if same else f" --hp 'net_arch={sizes}'") + _env_opt_hint(env_options)
    click.echo(f"use it: rlcourse train ppo rlcourse/Chatbot-v0 {hint}")


#: The file name of the fitted preference model inside its run folder.
PREFERENCE_FILE = "preference.pt"


@fit_command.command("preference", context_settings=CONTEXT)
@chat_env_options
@click.option(
    "--lm",
    "lm_file",
    default=None,
    metavar="LM_FILE",
    help="A fitted chat language model (`rlcourse fit chat-lm`): its sampled replies join the rejected ones.",
)
@click.option("--epochs", type=click.IntRange(min=1), default=4, show_default=True, help="Passes over the pairs.")
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True, help="Pairs per step.")
@click.option("--hp", "hp_assignments", multiple=True, metavar="KEY=VALUE", help="Set a model setting (hidden_dim=32).")
@run_options
def fit_preference_model(
    corpus: str | None, context_len: int, reply_len: int, min_count: int, tokenizer: str, bpe_vocab_size: int | None,
    lm_file: str | None, epochs: int, batch_size: int, hp_assignments: tuple[str, ...], seed: int, name: str | None,
    runs_root: Path, threads: int,
) -> None:  # fmt: skip
    """Fit the chatbot's preference reward model (Bradley–Terry) on (human reply, worse reply) pairs of the corpus.

    The worse reply is a dull one, another conversation's reply, and with --lm one the language model samples;
    the model is scored by pairwise accuracy on the validation split's pairs. Train against it with
    ``rlcourse train ppo rlcourse/Chatbot-v0 --hp reward_model=PATH``.
    """
    import torch

    from rlcourse.checkpoint import CheckpointError
    from rlcourse.logger import RunLogger
    from rlcourse.supervised.chat.preference import (
        PreferenceConfig,
        PreferenceRewardModel,
        fit_preference,
        mixed_preference_pairs,
        without_ties,
    )
    from rlcourse.supervised.storage import load_plugin

    config = make_config(PreferenceConfig, parse_hp(hp_assignments))
    env, env_options = _chat_env(corpus=corpus, context_len=context_len, reply_len=reply_len, min_count=min_count,
                                 tokenizer=tokenizer, bpe_vocab_size=bpe_vocab_size)  # fmt: skip
    lm = None
    if lm_file is not None:
        with run_dir_errors("--lm"):
            try:
                lm = load_plugin(lm_file, "cpu", env.single_observation_space, env.single_action_space)
                lm.check_env(env)
            except (CheckpointError, ValueError) as error:
                raise click.BadParameter(str(error), param_hint="--lm") from None
            if not hasattr(lm, "sample"):
                raise click.BadParameter(
                    f"{lm_file} is a {type(lm).__name__}, not a chat language model", param_hint="--lm"
                )
    if name is not None:
        with run_dir_errors("--name"):
            check_run_name(name)
    set_threads(threads)
    torch.manual_seed(seed)
    model = PreferenceRewardModel.for_env(env, config)
    with run_dir_errors("--runs-root"):
        run = RunDir.create(runs_root, "preference", "bt", name, seed)
    record = {"fit": "preference", **_recorded_env_options(env), "lm": lm_file, "epochs": epochs,
              "batch_size": batch_size, "seed": seed, **config_to_dict(model.config)}  # fmt: skip
    run.write_config(record)
    generator = torch.Generator().manual_seed(seed)
    corpus_data, dull = env.corpus, env.dull_replies
    sampler = None if lm is None else (lambda contexts: lm.sample(contexts, corpus_data.reply_len, generator))
    pairs = {
        split: without_ties(*mixed_preference_pairs(*corpus_data.split(split), generator, dull, sampler))
        for split in ("train", "valid")
    }
    logger = RunLogger(run.path, epochs, progress_bar=False)
    started = time.perf_counter()
    history = fit_preference(
        model, pairs["train"], pairs["valid"], epochs, batch_size, seed,
        log=lambda tag, v, step: logger.scalars({tag: v}, step),
    )  # fmt: skip
    path = model.save(run / PREFERENCE_FILE)
    logger.close()
    accuracy = max(history["valid_accuracy"])
    run.write_eval({"seconds": time.perf_counter() - started, "valid_pairwise_accuracy": accuracy, "history": history})
    click.echo(f"valid_pairwise_accuracy: {accuracy:.3f} ({pairs['valid'][0].shape[0]:,} held-out pairs)")
    click.echo(f"saved {path}")
    click.echo(f"use it: rlcourse train ppo rlcourse/Chatbot-v0 --hp reward_model={path}{_env_opt_hint(env_options)}")
