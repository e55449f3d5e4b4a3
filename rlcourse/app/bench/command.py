"""The ``rlcourse bench`` click command: options, the device, and which suite runs.

Each suite lives in its own module (:mod:`~rlcourse.app.bench.cartpole`, :mod:`~rlcourse.app.bench.agents`,
:mod:`~rlcourse.app.bench.dialogue`); this one only parses the options, runs the chosen suite, prints its
markdown and writes the report files. The ``rlcourse`` group imports it only when ``bench`` is run, since
the suites import Stable-Baselines3.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import torch

from rlcourse.app.bench import (
    agents,
    agents_report,
    cartpole,
    chatbot,
    dialogue,
    plugins,
    pokemon,
    scale,
    seqgan,
    threads,
)
from rlcourse.app.bench import seeds as seeds_suite  # not `seeds`: the command's --seeds option has that name
from rlcourse.app.bench.harness import EVAL_INTERVAL_STEPS, bench_meta, load_average
from rlcourse.app.bench.report import write_report
from rlcourse.config import ConfigError, load_preset, parse_hp
from rlcourse.device import DEFAULT_THREADS, resolve_device, set_threads


# --------------------------------------------------------------------------- the command
@click.command("bench")
@click.option(
    "--suite",
    type=click.Choice(
        ["cartpole", "dialogue", "agents", "threads", "plugins", "pokemon", "scale", "seqgan", "chatbot", "seeds"]
    ),
    default="cartpole",
    show_default=True,
    help="cartpole: PPO vs SB3 on CartPole-v1; dialogue: rlcourse/SlotFilling-v0 (env, rule expert, PPO, SB3); "
    "agents: every algorithm on its preset task, next to SB3's where SB3 has it; threads: `rlcourse train` on the "
    "CPU per torch thread count, idle and beside a busy process; plugins: curiosity on MountainCar, GAIL and AIRL "
    "on CartPole (beside the imitation library with --imitation-python); pokemon: rlcourse/PokemonBattle-v0 (raw env "
    "steps/s, scripted matchups, PPO against each opponent); scale: data-parallel training on --nproc ranks through "
    "torchrun (steps/s, time to the target, final return, speed-up); seqgan: SeqGAN on the synthetic LSTM oracle "
    "(NLL-oracle after MLE and after adversarial training, with curves); chatbot: rlcourse/Chatbot-v0 (MLE, the "
    "preference model, PPO with the KL penalty on single replies and in self-play; tokens/s); seeds: --seeds N PPO "
    "CartPole agents as one batched run (default 1,024 on CUDA, 8 on CPU) against N plain runs' projected time.",
)
@click.option(
    "--algo", "algos", multiple=True, help="agents suite: algorithms to run (default: all); scale suite: one (ppo)."
)
@click.option(
    "--nproc",
    default="1,2",
    show_default=True,
    metavar="N,N,...",
    help="scale suite: rank counts, one torchrun run each (--nproc_per_node N).",
)
@click.option("--env", "env_id", default=None, help=f"scale suite: the env (default: {scale.DEFAULT_ENV}).")
@click.option(
    "--num-envs-per-rank",
    type=click.IntRange(min=1),
    default=None,
    help="scale suite: envs on each rank (default: 8 on CPU, 65536 on CUDA).",
)
@click.option(
    "--nlu", "nlu_presets", multiple=True, help="dialogue suite: NLU presets of the PPO rows (default: clean, tcbot)."
)
@click.option(
    "--env-num-envs",
    "env_num_envs",
    type=click.IntRange(min=1),
    multiple=True,
    help="dialogue suite: batch sizes of the raw env throughput rows (default: 4096 on CPU, 1048576 on CUDA).",
)
@click.option(
    "--sb3-seeds",
    type=click.IntRange(min=0),
    default=1,
    show_default=True,
    help="dialogue suite: SB3 seeds (0: no SB3 row).",
)
@click.option(
    "--device",
    type=click.Choice(["auto", "cpu", "cuda"]),
    default="auto",
    show_default=True,
    help="Device of the rlcourse rows (SB3 always runs on the CPU).",
)
@click.option(
    "--num-envs",
    "num_envs",
    type=click.IntRange(min=1),
    multiple=True,
    help="Parallel envs of an rlcourse row; repeat for several (default: 64 on CPU, 4096 and 262144 on CUDA).",
)
@click.option(
    "--seeds", type=click.IntRange(min=1), default=None, help="Number of seeds, 0..N-1 (default: 1; 5 for --quality)."
)
@click.option(
    "--target", type=float, default=475.0, show_default=True, help="Deterministic mean return that counts as solved."
)
@click.option(
    "--max-steps",
    type=click.IntRange(min=1),
    default=None,
    help="Env-step budget per rlcourse run (default: 20,000,000 on CUDA, 3,000,000 on CPU; threads suite: 30,000).",
)
@click.option("--sb3/--no-sb3", default=True, show_default=True, help="Include Stable-Baselines3's PPO.")
@click.option(
    "--preset",
    "ppo_preset",
    default=None,
    help="pokemon suite: the PPO preset variant of the PPO and self-play rows (default: the env's default).",
)
@click.option(
    "--elo-battles",
    type=click.IntRange(min=2),
    default=None,
    help="pokemon suite: battles per round-robin pairing of the self-play Elo table (default: 1,000 CUDA, 200 CPU).",
)
@click.option(
    "--sb3-max-steps",
    type=click.IntRange(min=1),
    default=None,
    help=f"SB3's env-step budget (cartpole: RL Zoo's {cartpole.RL_ZOO_STEPS:,}; dialogue: the PPO preset's).",
)
@click.option(
    "--quality/--no-quality",
    default=False,
    show_default=True,
    help="Also run the learning-quality suite: the shipped preset (and SB3) for 100k steps per seed.",
)
@click.option(
    "--eval-every",
    type=click.IntRange(min=1),
    default=None,
    help=f"Iterations (SB3: rollouts) between evaluations (default: about every {EVAL_INTERVAL_STEPS} env steps).",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("bench_results"),
    show_default=True,
    help="Folder for the .md and .json reports.",
)
@click.option("--compile", "compile_", is_flag=True, help="Run rlcourse's hot functions through torch.compile.")
@click.option(
    "--large-batch/--no-large-batch",
    "large_batch",
    default=None,
    help="agents suite: also run each algorithm with its large-batch GPU settings (default: on CUDA only).",
)
@click.option(
    "--preset-rows/--no-preset-rows",
    "preset_rows",
    default=True,
    show_default=True,
    help="agents suite: run each algorithm with its shipped preset.",
)
@click.option(
    "--tf32",
    is_flag=True,
    help="Let CUDA float32 matmuls use TF32 tensor cores (torch.backends.cuda.matmul.allow_tf32).",
)
@click.option(
    "--pretrain-epochs",
    type=click.IntRange(min=0),
    default=None,
    help="seqgan suite: MLE epochs of the generator (default: 80 on CUDA, 25 on CPU).",
)
@click.option(
    "--adversarial-batches",
    type=click.IntRange(min=0),
    default=None,
    help="seqgan suite: adversarial batches, one generator step each (default: 200 on CUDA, 40 on CPU).",
)
@click.option(
    "--rollouts",
    type=click.IntRange(min=1),
    default=None,
    help="seqgan suite: Monte-Carlo roll-outs per prefix (default: 16, the paper's).",
)
@click.option(
    "--seqgan-hp",
    "seqgan_hp",
    multiple=True,
    metavar="KEY=VALUE",
    help="seqgan suite: override any SeqGANConfig setting (YAML value), e.g. d_rounds=5; repeat for several.",
)
@click.option(
    "--precision",
    type=click.Choice(["fp32", "bf16"]),
    default="fp32",
    show_default=True,
    help="cartpole suite: the rlcourse speed rows' forward passes (PPO's precision hyperparameter).",
)
@click.option(
    "--streams",
    type=click.Choice(["member", "batch"]),
    default="member",
    show_default=True,
    help="seeds suite: each member draws from its own generators (member: it is the plain run of its seed), or each "
    "kind of draw is one call for the whole batch (batch: faster at many members on a GPU).",
)
@click.option(
    "--imitation-python",
    metavar="PY",
    default=None,
    help="plugins suite: a Python with imitation 1.0.1 installed, to run its GAIL beside rlcourse's.",
)
def bench_command(
    suite: str,
    algos: tuple[str, ...],
    nlu_presets: tuple[str, ...],
    env_num_envs: tuple[int, ...],
    sb3_seeds: int,
    device: str,
    num_envs: tuple[int, ...],
    seeds: int | None,
    target: float,
    max_steps: int | None,
    sb3: bool,
    ppo_preset: str | None,
    elo_battles: int | None,
    sb3_max_steps: int | None,
    quality: bool,
    eval_every: int | None,
    out: Path,
    compile_: bool,
    large_batch: bool | None,
    preset_rows: bool,
    tf32: bool,
    imitation_python: str | None,
    nproc: str,
    env_id: str | None,
    num_envs_per_rank: int | None,
    pretrain_epochs: int | None,
    adversarial_batches: int | None,
    rollouts: int | None,
    seqgan_hp: tuple[str, ...],
    precision: str,
    streams: str,
) -> None:
    """Benchmark rlcourse against Stable-Baselines3 (same process, same machine).

    The cartpole suite runs PPO on CartPole-v1; the dialogue suite measures rlcourse/SlotFilling-v0.
    Prints the device, the date and markdown tables, and writes <out>/bench-<device>-<...>-<date>.md and .json.
    """
    if suite == "agents":
        _agents_suite(device, algos, seeds, sb3_seeds if sb3 else 0, out, compile_, tf32, large_batch, preset_rows)
        return
    if suite == "threads":
        _threads_suite(seeds, max_steps, out)
        return
    if suite == "plugins":
        _plugins_suite(device, seeds, imitation_python, out, tf32)
        return
    if suite == "seqgan":
        budget = {"pretrain_epochs": pretrain_epochs, "adversarial_batches": adversarial_batches, "rollouts": rollouts}
        _seqgan_suite(device, seeds, budget, seqgan_hp, out, tf32)
        return
    if suite == "chatbot":
        _chatbot_suite(device, seeds, max_steps, out, tf32)
        return
    if suite == "seeds":
        _seeds_suite(device, seeds, num_envs, max_steps, target, ppo_preset, out, tf32, streams)
        return
    if suite == "pokemon":
        _pokemon_suite(device, num_envs, max_steps, out, tf32, ppo_preset, elo_battles, sb3, sb3_max_steps)
        return
    if suite == "scale":
        given = click.get_current_context().get_parameter_source("target") is click.core.ParameterSource.COMMANDLINE
        _scale_suite(device, nproc, algos, env_id, num_envs_per_rank, max_steps, seeds, target if given else None, out)
        return
    if suite == "dialogue":
        _dialogue_suite(
            device,
            nlu_presets,
            env_num_envs,
            sb3_seeds if sb3 else 0,
            num_envs,
            seeds,
            max_steps,
            out,
            compile_,
            tf32,
            sb3_max_steps,
        )
        return
    sb3_max_steps = sb3_max_steps or cartpole.RL_ZOO_STEPS
    if not math.isfinite(target):
        raise click.BadParameter(f"must be a finite number, got {target!r}", param_hint="--target")
    dev = _bench_device(device, tf32)
    meta = bench_meta(
        device,
        target,
        seeds=seeds or 1,
        quality_seeds=(seeds or 5) if quality else None,
        num_envs=list(num_envs) or cartpole.default_num_envs(dev),
        max_steps=max_steps,
        sb3=sb3,
        sb3_max_steps=sb3_max_steps,
        quality=quality,
        eval_every=eval_every,
        compile=compile_,
        tf32=tf32,
        precision=precision,
    )
    _announce(meta)
    rows = cartpole.run_bench(
        device=device,
        num_envs=num_envs,
        seeds=seeds,
        target=target,
        max_steps=max_steps,
        sb3=sb3,
        sb3_max_steps=sb3_max_steps,
        quality=quality,
        eval_every=eval_every,
        compile=compile_,
        progress=lambda line: click.echo(line, err=True),
        precision=precision,
    )
    _finish_suite(None, {"rows": rows}, meta, lambda report, meta: cartpole.render_markdown(report["rows"], meta), out)


def _bench_device(device: str, tf32: bool) -> torch.device:
    """The ``--device`` option as a device (a click error when it is unusable), with TF32 set as asked."""
    try:
        dev = resolve_device(device)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--device") from None
    torch.backends.cuda.matmul.allow_tf32 = tf32
    return dev


def _announce(meta: dict[str, Any]) -> None:
    """Say where and when, before the first run (a report is only as good as knowing its machine)."""
    click.echo(f"device: {meta['device_name']}")
    click.echo(f"date: {meta['date']}")


def _finish_suite(
    suite: str | None, report: dict[str, Any], meta: dict[str, Any], render: Callable[[Any, Any], str], out: Path
) -> None:
    """Print a suite's markdown (``render(report, meta)``) and write it with the raw report to
    ``<out>/bench-[<suite>-]<device>-<...>-<date>.md/.json``."""
    meta["load_average_end"] = load_average()
    markdown = render(report, meta)
    md_path, json_path = write_report(markdown, report, meta, out, suite=suite)
    click.echo(markdown)
    click.echo(f"wrote {md_path} and {json_path}")


def _dialogue_suite(
    device: str,
    nlu_presets: tuple[str, ...],
    env_num_envs: tuple[int, ...],
    sb3_seeds: int,
    num_envs: tuple[int, ...],
    seeds: int | None,
    max_steps: int | None,
    out: Path,
    compile_: bool,
    tf32: bool,
    sb3_max_steps: int | None = None,
) -> None:
    from rlcourse.envs.dialogue.nlu import NLU_PRESETS

    for nlu in nlu_presets:
        if nlu not in NLU_PRESETS:
            raise click.BadParameter(
                f"unknown NLU preset {nlu!r}; choose from {', '.join(NLU_PRESETS)}", param_hint="--nlu"
            )
    dev = _bench_device(device, tf32)
    batch_sizes = list(num_envs) or ([4096, 65536] if dev.type == "cuda" else [64])
    env_sizes = list(env_num_envs) or ([1 << 20] if dev.type == "cuda" else [4096])
    meta = bench_meta(
        device,
        0.9,
        suite="dialogue",
        seeds=seeds or 5,
        num_envs=batch_sizes,
        env_num_envs=env_sizes,
        nlu=list(nlu_presets) or ["clean", "tcbot"],
        sb3_seeds=sb3_seeds,
        max_steps=max_steps,
        sb3_max_steps=sb3_max_steps,
        compile=compile_,
        tf32=tf32,
    )
    _announce(meta)
    report = dialogue.run_dialogue_bench(
        dev,
        batch_sizes,
        seeds or 5,
        list(nlu_presets) or ["clean", "tcbot"],
        env_sizes,
        max_steps,
        sb3_seeds,
        compile_,
        say=lambda line: click.echo(line, err=True),
        sb3_budget=sb3_max_steps,
    )
    _finish_suite("dialogue", report, meta, dialogue.render_dialogue_markdown, out)


def _seeds_suite(
    device: str,
    members: int | None,
    num_envs: tuple[int, ...],
    max_steps: int | None,
    target: float,
    variant: str | None,
    out: Path,
    tf32: bool,
    streams: str,
) -> None:
    if len(num_envs) > 1:
        raise click.BadParameter("the seeds suite takes one --num-envs (envs per member)", param_hint="--num-envs")
    dev = _bench_device(device, tf32)
    meta = bench_meta(
        device,
        target,
        suite="seeds",
        members=members or seeds_suite.DEFAULT_MEMBERS.get(dev.type, seeds_suite.DEFAULT_MEMBERS["cpu"]),
        num_envs=list(num_envs) or None,
        max_steps=max_steps,
        preset=variant or "default",
        tf32=tf32,
        streams=streams,
    )
    _announce(meta)
    report = seeds_suite.run_seeds_bench(
        dev,
        members,
        num_envs[0] if num_envs else None,
        max_steps,
        target,
        say=lambda line: click.echo(line, err=True),
        variant=variant or "default",
        streams=streams,
    )
    _finish_suite("seeds", report, meta, seeds_suite.render_seeds_markdown, out)


def _threads_suite(seeds: int | None, max_steps: int | None, out: Path) -> None:
    steps = max_steps or threads.DEFAULT_STEPS
    meta = bench_meta("cpu", 0.0, suite="threads", seeds=seeds or 3, steps=steps)
    _announce(meta)
    report = threads.run_threads_bench(seeds or 3, steps, say=lambda line: click.echo(line, err=True))
    _finish_suite("threads", report, meta, threads.render_threads_markdown, out)


def _plugins_suite(device: str, seeds: int | None, imitation_python: str | None, out: Path, tf32: bool) -> None:
    resolved = resolve_device(device)
    torch.backends.cuda.matmul.allow_tf32 = tf32
    set_threads(DEFAULT_THREADS)  # what every agent it builds sets, so the report's header says so
    meta = bench_meta(str(resolved), plugins.TARGET, suite="plugins", seeds=seeds or 5)
    _announce(meta)
    report = plugins.run_plugins_bench(
        resolved, seeds or 5, imitation_python, say=lambda line: click.echo(line, err=True)
    )
    _finish_suite("plugins", report, meta, plugins.render_plugins_markdown, out)


def _chatbot_suite(device: str, seeds: int | None, max_steps: int | None, out: Path, tf32: bool) -> None:
    dev = _bench_device(device, tf32)
    set_threads(DEFAULT_THREADS)
    budget = chatbot.budget_for(dev, {"rl_steps": max_steps})
    meta = bench_meta(str(dev), 0.0, suite="chatbot", seeds=seeds or 3, **budget)
    _announce(meta)
    report = chatbot.run_chatbot_bench(dev, seeds or 3, budget, say=lambda line: click.echo(line, err=True))
    _finish_suite("chatbot", report, meta, chatbot.render_chatbot_markdown, out)


def _seqgan_suite(
    device: str, seeds: int | None, budget: dict[str, int | None], assignments: tuple[str, ...], out: Path, tf32: bool
) -> None:
    dev = _bench_device(device, tf32)
    try:
        overrides = parse_hp(assignments, flag="--seqgan-hp")
        for key, value in budget.items():
            if value is not None:
                if key in overrides:
                    raise ValueError(f"set {key} once: --{key.replace('_', '-')} or --seqgan-hp {key}=..., not both")
                overrides[key] = value
        config = seqgan.settings_for(dev, overrides)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--seqgan-hp / the seqgan budget options") from None
    set_threads(DEFAULT_THREADS)
    meta = bench_meta(str(dev), 0.0, suite="seqgan", seeds=seeds or 1)
    _announce(meta)
    report = seqgan.run_seqgan_bench(dev, seeds or 1, config, say=lambda line: click.echo(line, err=True))
    _finish_suite("seqgan", report, meta, seqgan.render_seqgan_markdown, out)


def _pokemon_suite(
    device: str,
    num_envs: tuple[int, ...],
    max_steps: int | None,
    out: Path,
    tf32: bool,
    preset: str | None,
    elo_battles: int | None,
    sb3: bool,
    sb3_steps: int | None,
) -> None:
    resolved = resolve_device(device)
    torch.backends.cuda.matmul.allow_tf32 = tf32
    if preset is not None:
        try:
            load_preset("ppo", pokemon.ENV_ID, preset)
        except ConfigError as error:
            raise click.BadParameter(str(error), param_hint="--preset") from None
    meta = bench_meta(str(resolved), 0.0, suite="pokemon", seeds=1, preset=preset or "default")
    _announce(meta)
    lines, report = pokemon.run_suite(
        resolved,
        num_envs,
        max_steps,
        with_sb3=sb3,
        elo_battles=elo_battles,
        sb3_steps=sb3_steps,
        preset=preset,
        say=lambda line: click.echo(line, err=True),
    )

    def render(report: dict[str, Any], meta: dict[str, Any]) -> str:
        header = [
            "# rlcourse bench: Pokémon battles",
            "",
            f"- device: {meta['device_name']}",
            f"- date: {meta['date']}; torch {meta['torch']}, Python {meta['python']}",
            "",
        ]
        return "\n".join([*header, *lines, ""])

    _finish_suite("pokemon", report, meta, render, out)


def _scale_suite(
    device: str,
    nproc: str,
    algos: tuple[str, ...],
    env_id: str | None,
    num_envs_per_rank: int | None,
    max_steps: int | None,
    seeds: int | None,
    target: float | None,
    out: Path,
) -> None:
    try:
        counts = scale.parse_nproc(nproc)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--nproc") from None
    if len(algos) > 1:
        raise click.BadParameter("the scale suite runs one algorithm", param_hint="--algo")
    if target is not None and not math.isfinite(target):
        raise click.BadParameter(f"must be a finite number, got {target!r}", param_hint="--target")
    dev = _bench_device(device, tf32=False)
    algo, env = (algos[0] if algos else scale.DEFAULT_ALGO), env_id or scale.DEFAULT_ENV
    meta = bench_meta(device, target, suite="scale", seeds=seeds or 1, nproc=counts, algo=algo, env=env)
    _announce(meta)
    report = scale.run_scale_bench(
        counts,
        algo=algo,
        env_id=env,
        envs_per_rank=num_envs_per_rank,
        device=dev.type,
        budget=max_steps,
        seeds=seeds or 1,
        target=target,
        say=lambda line: click.echo(line, err=True),
    )
    _finish_suite("scale", report, meta, scale.render_scale_markdown, out)


def _agents_suite(
    device: str,
    algos: tuple[str, ...],
    seeds: int | None,
    sb3_seeds: int,
    out: Path,
    compile_: bool,
    tf32: bool,
    large_batch: bool | None,
    preset_rows: bool = True,
) -> None:
    dev = _bench_device(device, tf32)
    large_batch = dev.type == "cuda" if large_batch is None else large_batch
    if not preset_rows and not large_batch:
        raise click.BadParameter(
            "with --no-preset-rows there is nothing to run unless --large-batch is on "
            "(it is on by default on CUDA only)",
            param_hint="--no-preset-rows",
        )
    meta = bench_meta(
        device,
        0.0,
        suite="agents",
        algos=list(algos) or None,
        seeds=seeds or 5,
        sb3_seeds=sb3_seeds,
        compile=compile_,
        tf32=tf32,
        large_batch=large_batch,
        preset_rows=preset_rows,
    )
    _announce(meta)
    report = agents.run_agents_bench(
        dev,
        algos=list(algos) or None,
        seeds=seeds or 5,
        sb3_seeds=sb3_seeds,
        compile=compile_,
        say=lambda line: click.echo(line, err=True),
        large_batch=large_batch,
        presets=preset_rows,
    )
    _finish_suite("agents", report, meta, agents_report.render_agents_markdown, out)
