"""``rlcourse bench``: rlcourse against Stable-Baselines3 on the same task, in the same process.

Shared pieces, which import no suite: :mod:`~rlcourse.app.bench.harness` (clocks, learn-to-target, throughput,
settings per batch size, run metadata), :mod:`~rlcourse.app.bench.report` (number formatting, markdown tables,
the report files) and :mod:`~rlcourse.app.bench.sb3` (RL Zoo's settings from ``sb3_zoo.yml``, SB3 models and
their timing). One module per suite on top, none importing another: :mod:`~rlcourse.app.bench.cartpole`,
:mod:`~rlcourse.app.bench.agents` (with its table in :mod:`~rlcourse.app.bench.agents_report`) and
:mod:`~rlcourse.app.bench.dialogue`. :mod:`~rlcourse.app.bench.command` is the click command over them all.
"""
