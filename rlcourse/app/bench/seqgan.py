"""The seqgan suite: SeqGAN's synthetic-oracle benchmark (Yu et al. 2017, §4), with rlcourse's own implementation.

A random LSTM oracle (vocabulary 5,000, sizes 32, parameters ~ N(0, 1)) draws 10,000 training sequences of
20 tokens; a generator of the same shape is pre-trained by MLE, then trained adversarially by the policy
gradient with Monte-Carlo per-token rewards from a CNN discriminator
(:mod:`rlcourse.supervised.seqgan`). The metric is NLL-oracle: the oracle's mean negative log-likelihood
per token (nats) of fresh generator samples, lower is better. The report gives, over ``--seeds`` seeds
(0..N-1; the oracle and its data are the same for all, from oracle seed 0): NLL-oracle after MLE and after
the adversarial stage, the improvement, the oracle's own samples (the floor) and wall times, plus the
curves of both stages (every point in the JSON, a compact table in the markdown). The paper: MLE 9.038,
SeqGAN 8.736 (its oracle, not ours: compare improvements, not levels).

The control row: from the same MLE generator, the same number of policy-gradient steps with every
token's reward 1 and no discriminator. REINFORCE with all-positive rewards and no baseline (the paper's
choice) raises the likelihood of whatever was sampled, which lowers the generator's entropy and with it
NLL-oracle; the control shows how much of the adversarial stage's gain that alone explains.

Settings (:func:`settings_for`): the paper's model sizes, generator optimiser and 16 roll-outs
everywhere. On CUDA (:data:`CUDA_SETTINGS`) the paper's discriminator with a shorter
schedule: 10 pre-training rounds instead of 50, and after each generator step one round of one epoch
instead of five rounds of three (the paper's full schedule, ``--seqgan-hp d_pretrain_rounds=50
--seqgan-hp d_rounds=5 --seqgan-hp d_epochs=3``, is ~15× the discriminator work). On the CPU
(:data:`CPU_SETTINGS`), what fits ~15 minutes of one thread: a small discriminator (288 filters instead
of 1,720) trained on 2,000 + 2,000 sequences per round, 25 MLE epochs (NLL-oracle has flattened by epoch
20), 40 adversarial batches (with this weaker critic NLL-oracle stops falling by about then, and rises as
the critic catches up) and 2,000 samples per curve point. Every field of
:class:`~rlcourse.supervised.seqgan.SeqGANConfig` can be overridden (``--seqgan-hp KEY=VALUE``), and the
budget has its own options (``--pretrain-epochs``, ``--adversarial-batches``, ``--rollouts``).
"""

from __future__ import annotations

import functools
import statistics
from collections.abc import Callable
from typing import Any

import torch

from rlcourse.app.bench.report import num, spread, table
from rlcourse.config import config_to_dict, make_config

#: The paper's Table 2 (synthetic data, NLL-oracle per token): MLE and SeqGAN.
PAPER = {"mle": 9.038, "seqgan": 8.736}
#: On CUDA: the paper's settings (SeqGANConfig's defaults) with a shorter MLE stage (the paper's NLL-oracle
#: moves < 0.06 after epoch 50) and a shorter discriminator schedule (see the module docstring).
CUDA_SETTINGS: dict[str, Any] = {"pretrain_epochs": 80, "d_pretrain_rounds": 10, "d_rounds": 1, "d_epochs": 1}
#: On the CPU: what fits ~15 minutes of one thread (see the module docstring).
CPU_SETTINGS: dict[str, Any] = {
    **CUDA_SETTINGS,
    "pretrain_epochs": 25,
    "adversarial_batches": 40,
    "d_filter_sizes": (1, 2, 3, 4, 5, 8, 10, 15, 20),
    "d_num_filters": (32,) * 9,
    "d_negatives": 2000,
    "eval_samples": 2000,
}
#: The oracle (and its training data) is the same for every seed.
ORACLE_SEED = 0


def settings_for(device: torch.device, overrides: dict[str, Any]) -> Any:
    """The SeqGANConfig the suite runs on ``device``: that device's settings, then ``overrides`` (a ``ConfigError``,
    a ``ValueError``, names a bad key or value)."""
    from rlcourse.supervised.seqgan import SeqGANConfig

    base = CUDA_SETTINGS if device.type == "cuda" else CPU_SETTINGS
    return make_config(SeqGANConfig, {**base, **overrides})


def run_seqgan_bench(device: torch.device, seeds: int, config: Any, say: Callable[[str], None]) -> dict[str, Any]:
    """Run the experiment, with its no-discriminator control, for seeds 0..``seeds``-1; the report holds each
    run's figures and curves, and a summary over seeds."""
    from rlcourse.supervised.seqgan import run_seqgan

    runs = []
    for seed in range(seeds):
        result = run_seqgan(
            config, device, seed=seed, oracle_seed=ORACLE_SEED, say=functools.partial(_tagged, say, seed), control=True
        )
        seconds = result.seconds
        runs.append(
            {
                "seed": seed,
                "oracle_nll": result.oracle_nll,
                "mle_nll": result.mle_nll,
                "seqgan_nll": result.seqgan_nll,
                "improvement": result.improvement,
                "control_nll": result.control_nll,
                "control_improvement": result.mle_nll - result.control_nll,
                "wall_s": seconds["mle"] + seconds["discriminator_pretraining"] + seconds["adversarial"],
                "stage_s": seconds,
                "mle_curve": result.mle_curve,
                "adversarial_curve": result.adversarial_curve,
                "control_curve": result.control_curve,
            }
        )
        say(
            f"seed {seed}: MLE {result.mle_nll:.3f} -> SeqGAN {result.seqgan_nll:.3f} (improvement "
            f"{result.improvement:.3f}; without a discriminator {result.control_nll:.3f}) in {runs[-1]['wall_s']:.0f} s"
        )
    summary = {}
    for key in ("mle_nll", "seqgan_nll", "improvement", "control_nll", "control_improvement", "wall_s"):
        values = [run[key] for run in runs]
        summary[key] = {"mean": statistics.fmean(values), "min": min(values), "max": max(values)}
    return {
        "config": config_to_dict(config),
        "oracle_seed": ORACLE_SEED,
        "paper": PAPER,
        "summary": summary,
        "runs": runs,
    }


def _tagged(say: Callable[[str], None], seed: int, line: str) -> None:
    say(f"seed {seed}: {line}")


def _curve_table(runs: list[dict[str, Any]], step: str, columns: dict[str, str], points: int = 12) -> list[str]:
    """A compact curve: NLL-oracle (mean [min–max] over seeds) of each ``columns`` curve (header: curve key) at
    about ``points`` of the recorded steps (all curves record the same steps)."""
    first = next(iter(columns.values()))
    steps = [point[step] for point in runs[0][first]]
    shown = min(points, len(steps))
    picks = {steps[round(i * (len(steps) - 1) / max(1, shown - 1))] for i in range(shown)}  # both ends included
    lines = []
    for value in sorted(picks):
        cells = [f"{value:,}"]
        for key in columns.values():
            cells.append(spread([next(p["nll_oracle"] for p in run[key] if p[step] == value) for run in runs], 3))
        lines.append(cells)
    return table((step, *columns), lines)


def render_seqgan_markdown(report: dict[str, Any], meta: dict[str, Any]) -> str:
    """The suite's report: the machine, the settings, the result table, the control and the two curves."""
    runs, config, seeds = report["runs"], report["config"], meta["seeds"]
    headline = [
        [
            "rlcourse SeqGAN",
            spread([r["oracle_nll"] for r in runs], 3),
            spread([r["mle_nll"] for r in runs], 3),
            spread([r["seqgan_nll"] for r in runs], 3),
            spread([r["improvement"] for r in runs], 3),
            spread([r["wall_s"] for r in runs], 0),
        ],
        ["rlcourse, the same steps with no discriminator (Q ≡ 1)", "—", "same", spread([r["control_nll"] for r in runs], 3),
         spread([r["control_improvement"] for r in runs], 3), spread([r["stage_s"]["control"] for r in runs], 0)],
        ["paper (its own oracle)", "—", num(PAPER["mle"], 3), num(PAPER["seqgan"], 3),
         num(PAPER["mle"] - PAPER["seqgan"], 3), "—"],
    ]  # fmt: skip
    d_filters = sum(config["d_num_filters"])
    return "\n".join(
        [
            "# rlcourse bench: SeqGAN on the synthetic oracle",
            "",
            f"- device: {meta['device_name']}",
            f"- date: {meta['date']}; torch {meta['torch']}, Python {meta['python']}, {meta['torch_threads']} torch "
            f"threads; 1-min load average {num(meta.get('load_average'), 2)} at start, "
            f"{num(meta.get('load_average_end'), 2)} at end",
            f"- seeds 0..{seeds - 1} (oracle seed {report['oracle_seed']} for all); several seeds: mean [min–max]",
            f"- oracle: LSTM, vocabulary {config['vocab_size']:,}, embedding {config['embed_dim']}, hidden "
            f"{config['hidden_dim']}, parameters ~ N(0, {config['oracle_std']}²); {config['num_samples']:,} training "
            f"sequences of {config['seq_len']} tokens",
            f"- MLE: {config['pretrain_epochs']} epochs, Adam {config['pretrain_lr']}, batch {config['batch_size']}; "
            f"discriminator: CNN of {d_filters:,} filters (widths {', '.join(map(str, config['d_filter_sizes']))}), "
            f"Adam {config['d_lr']}, {config['d_pretrain_rounds']} pre-training rounds",
            f"- adversarial: {config['adversarial_batches']} batches, each one policy-gradient step (Adam "
            f"{config['adversarial_lr']}, {config['rollouts']} Monte-Carlo roll-outs per prefix, baseline "
            f"{config['baseline']}) and {config['d_rounds']} discriminator round(s) of {config['d_epochs']} epoch(s) "
            f"over {config['d_negatives']:,} fresh samples + as many real ones",
            "- control: from the same MLE generator, the same number of policy-gradient steps with every token's "
            "reward 1 and no discriminator: how much of the gain the critic's judgement brings",
            f"- NLL-oracle: −(1/T) Σ_t log p_oracle(y_t | y_<t), nats per token (as the paper's code computes it), "
            f"on {config['final_eval_samples']:,} fresh generator samples at the end of each stage and "
            f"{config['eval_samples']:,} at the other points of the curves; wall s: MLE, discriminator pre-training and the "
            "adversarial stage (the control's own time in its row)",
            "",
            *table(
                (
                    "implementation",
                    "oracle's own samples",
                    "NLL-oracle after MLE",
                    "after the adversarial stage",
                    "improvement",
                    "wall s",
                ),
                headline,
            ),  # fmt: skip
            "",
            "## MLE pre-training",
            "",
            *_curve_table(runs, "epoch", {"NLL-oracle": "mle_curve"}),
            "",
            "## Adversarial training",
            "",
            *_curve_table(runs, "batch", {"SeqGAN": "adversarial_curve", "no discriminator": "control_curve"}),
            "",
        ]
    )
