"""``rlcourse/PokemonBattle-v0``: Gen 9 singles Pokémon battles against a scripted or learned opponent, batched.

A two-player game made a one-player env: the agent plays side 0, the opponent (``opponent=``, see
:mod:`~rlcourse.envs.pokemon.opponents`) plays side 1 inside ``step``. The rules are
:mod:`~rlcourse.envs.pokemon.battle` and :mod:`~rlcourse.envs.pokemon.moves`; what the agent sees and
may do is :mod:`~rlcourse.envs.pokemon.observation` (``Discrete(9)``: 4 moves, 5 switches, with
``action_masks()``). An invalid action is replaced by the lowest valid one, as Showdown does with a
missing choice, so an unmasked policy still plays.

**Teams** of ``team_size`` (1-6, default 3) distinct species are drawn for both sides at every reset,
with the level and move set of :mod:`~rlcourse.envs.pokemon.teams`; ``team=`` / ``opponent_team=`` fix
a side's team (a team spec) instead.

**Rewards** (``reward=``):

* ``win``: +1 for a win, −1 for a loss, 0 otherwise, at the end (the sparse reward of a game, as in the
  notes' Go example, notes:12285 [Deep RL]);
* ``shaped``: poke-env's ``reward_computing_helper``: the change, each step, of
  Σ_own (HP fraction − 2·fainted − 0.5·statused) − the same for the foe ± 30 for a win / loss
  (status counts only for a Pokémon still standing).

The battle ends when a side has no Pokémon left (``terminated``; both at once is a draw) or after
``max_turns`` turns (``truncated``, a draw). ``info["final_info"]`` holds ``win`` and ``draw``
(``outcome_keys``). While :attr:`recording` is on, ``info["battle_events"]`` holds what
:mod:`~rlcourse.envs.pokemon.battle_log` writes as a Showdown-style log (``render_mode="ansi"``,
``rlcourse play``, TensorBoard text).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from gymnasium import spaces

from rlcourse.envs.pokemon import battle, opponents
from rlcourse.envs.pokemon.battle import (
    NUM_ACTIONS,
    SIDES,
    SLOTS,
    BattleState,
    alive_counts,
    play_turn,
    slot_rows,
    switch_in,
)
from rlcourse.envs.pokemon.dex import HEALTHY, dex_on, load_dex
from rlcourse.envs.pokemon.observation import OBS_DIM, action_masks, observe, sanitise
from rlcourse.envs.pokemon.rules import stat_values
from rlcourse.envs.pokemon.self_play import (
    DEFAULT_EVERY,
    DEFAULT_POOL_SIZE,
    SelfPlayCallback,
    SnapshotPool,
    check_positive,
)
from rlcourse.envs.pokemon.teams import MAX_TEAM_SIZE, draw_distinct, parse_team, species_tables
from rlcourse.vec_env import TensorVecEnv

REWARDS = ("win", "shaped")
FAINTED_VALUE, HP_VALUE, STATUS_VALUE, VICTORY_VALUE = 2.0, 1.0, 0.5, 30.0
DEFAULT_MAX_TURNS = 100
ACTION_NAMES = (*(f"move {i + 1}" for i in range(4)), *(f"switch to slot {i + 1}" for i in range(1, SLOTS)))


def _check_int(name: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not low <= value <= high:
        raise ValueError(f"{name} must be an integer in {low}..{high}, got {value!r}")
    return int(value)


class PokemonBattleVecEnv(TensorVecEnv):
    """Batched Pokémon battles (see the module docstring).

    Args:
        num_envs, device, validate, render_mode: as for every :class:`~rlcourse.TensorVecEnv`.
        team_size: Pokémon per side in random teams, 1..6.
        opponent: ``random``, ``max_damage``, ``heuristic``, ``self`` (frozen snapshots, see
            :mod:`~rlcourse.envs.pokemon.self_play`), a policy ``(obs, action_masks) -> actions`` or an
            object with ``predict(obs, deterministic, action_masks)`` (a trained or loaded agent).
        reward: ``win`` or ``shaped``.
        max_turns: turns before the battle is cut off as a draw, 1..1000.
        team, opponent_team: fixed team specs for side 0 / side 1 (see :mod:`~rlcourse.envs.pokemon.teams`).
        self_play_every, self_play_pool: with ``opponent="self"``, a snapshot joins the pool every this many
            training iterations (default 10), and the pool keeps this many (default 4).
    """

    env_id = "rlcourse/PokemonBattle-v0"
    metadata = {**TensorVecEnv.metadata, "render_modes": ["ansi"]}
    outcome_keys = ("win", "draw")
    has_action_masks = True
    has_transcripts = True
    state_names = (*(f"battle_{name}" for name in BattleState.STORED), "potential")
    single_observation_space = spaces.Box(low=-1.0, high=1.0, shape=(OBS_DIM,), dtype=np.float32)
    single_action_space = spaces.Discrete(NUM_ACTIONS)

    def __init__(
        self,
        num_envs: int,
        device: str | torch.device = "cpu",
        validate: bool = False,
        render_mode: str | None = None,
        team_size: int = 3,
        opponent: str | opponents.Policy = "random",
        reward: str = "win",
        max_turns: int = DEFAULT_MAX_TURNS,
        team: list | None = None,
        opponent_team: list | None = None,
        self_play_every: int | None = None,
        self_play_pool: int | None = None,
    ):
        self.team_size = _check_int("team_size", team_size, 1, MAX_TEAM_SIZE)
        self.max_turns = _check_int("max_turns", max_turns, 1, 1000)
        opponents.check_opponent(opponent)
        self_play = isinstance(opponent, str) and opponent == "self"
        for name, value in (("self_play_every", self_play_every), ("self_play_pool", self_play_pool)):
            if value is not None and not self_play:
                raise ValueError(f"{name} applies to opponent='self' only (the opponent is {opponent!r})")
        if reward not in REWARDS:
            raise ValueError(f"unknown reward {reward!r}; choose one of {', '.join(REWARDS)}")
        super().__init__(num_envs, device, validate, render_mode)
        self.opponent, self.reward_kind = opponent, reward
        #: The frozen selves of ``opponent="self"`` (filled by :class:`~rlcourse.envs.pokemon.self_play.SelfPlayCallback`).
        self.snapshot_pool: SnapshotPool | None = None
        self._self_play: SelfPlayCallback | None = None
        if self_play:
            every = DEFAULT_EVERY if self_play_every is None else check_positive("self_play_every", self_play_every)
            size = DEFAULT_POOL_SIZE if self_play_pool is None else check_positive("self_play_pool", self_play_pool)
            self.snapshot_pool = SnapshotPool(size)
            self._self_play = SelfPlayCallback(every=every, pool_size=size)
        # a policy object or snapshots run outside this env's tensor program: no CUDA-graph capture of step
        self.graph_safe = isinstance(opponent, str) and opponent != "self"
        self._options = {
            "team_size": self.team_size,
            "opponent": opponent,
            "reward": reward,
            "max_turns": self.max_turns,
        }
        if self_play:
            self._options.update(self_play_every=self._self_play.every, self_play_pool=self._self_play.pool_size)
        self.dex = dex_on(self.device)
        levels, moves = species_tables(load_dex())
        self.species_levels, self.species_moves = levels.to(self.device), moves.to(self.device)
        self.fixed_teams: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None] = []
        for option, spec in (("team", team), ("opponent_team", opponent_team)):
            if spec is None:
                self.fixed_teams.append(None)
                continue
            self._options[option] = spec
            parsed = parse_team(load_dex(), spec, option)
            self.fixed_teams.append(tuple(t.to(self.device) for t in parsed))
        # fresh slot rows, looked up at every reset (see _team_rows)
        self._fixed_rows = [None if team is None else self._team_rows(team) for team in self.fixed_teams]
        self._random_rows = self._team_rows(None) if None in self.fixed_teams else None
        self._empty_slot_offset = torch.where(
            torch.arange(SLOTS, device=self.device) < self.team_size, 0, len(self.dex.species_ids)
        )
        self.state = BattleState.empty(self.num_envs, self.device)
        for name, tensor in self.state.tensors().items():
            setattr(self, f"battle_{name}", tensor)  # the env's state tensors are the battle's, shared
        self.potential = torch.zeros(self.num_envs, device=self.device)
        self._no_one = torch.zeros(self.num_envs, dtype=torch.bool, device=self.device)
        self._draw_width = battle.DRAWS_PER_TURN + 2 * opponents.DRAWS_PER_CHOICE

    # ----------------------------------------------------------------- contract hooks
    def _team_rows(self, team: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None) -> torch.Tensor:
        """Fresh slot rows: ``[2S, C]`` for random teams (row ``s`` species ``s`` in a team slot, ``S + s`` the same
        in a slot the team leaves empty), or ``[6, C]`` for a fixed ``team``."""
        dex = self.dex
        if team is None:
            species = torch.arange(len(dex.species_ids), device=self.device).repeat(2)
            level, moves = self.species_levels[species], self.species_moves[species]
            present = torch.arange(species.shape[0], device=self.device) < len(dex.species_ids)
        else:
            team_species, team_levels, team_moves = team
            n = team_species.shape[0]
            species = torch.zeros(SLOTS, dtype=torch.long, device=self.device)
            level = torch.ones_like(species)
            moves = torch.full((SLOTS, team_moves.shape[1]), -1, dtype=torch.long, device=self.device)
            species[:n], level[:n], moves[:n] = team_species, team_levels, team_moves
            present = torch.arange(SLOTS, device=self.device) < n
        stats = stat_values(dex.base_stats[species], level)
        pp = torch.where(moves >= 0, dex.move_pp[moves.clamp(min=0)] * 8 // 5, 0)
        return slot_rows(species, level, stats, moves, pp, present)

    def _reset_where(self, mask: torch.Tensor) -> None:
        draws = torch.rand(self.num_envs, SIDES, SLOTS, generator=self.generator, device=self.device)
        if self._selects_none(mask):
            return
        state = self.state
        if self._random_rows is not None:
            species = draw_distinct(draws, len(self.dex.species_ids))
            fresh = self._random_rows[species + self._empty_slot_offset]
        else:  # both teams fixed: the draws are still taken, so the stream is the same whatever the options
            fresh = torch.empty_like(state.slots)
        for side, rows in enumerate(self._fixed_rows):
            if rows is not None:
                fresh[:, side] = rows
        torch.where(mask.view(-1, 1, 1, 1), fresh, state.slots, out=state.slots)
        for target in (state.boosts, state.toxic_stage, state.turn, state.forced):
            target.masked_fill_(mask.view(-1, *[1] * (target.dim() - 1)), 0)
        if self.reward_kind == "shaped":
            self.potential.copy_(torch.where(mask, self._position_value(), self.potential))

    def _position_value(self) -> torch.Tensor:
        """poke-env's value of the position for side 0, without the victory term."""
        state = self.state
        fraction = state.hp.float() / state.stats[..., 0].clamp(min=1)
        fainted = state.present & (state.hp <= 0)
        statused = state.present & (state.hp > 0) & (state.status != HEALTHY)
        value = (HP_VALUE * fraction - FAINTED_VALUE * fainted.float() - STATUS_VALUE * statused.float()).sum(-1)
        return value[:, 0] - value[:, 1]

    def _opponent_choice(self, masks: torch.Tensor, draws: torch.Tensor, forced: torch.Tensor) -> torch.Tensor:
        if not isinstance(self.opponent, str):
            obs = observe(self.dex, self.state, 1, self.max_turns, forced)
            actions = torch.as_tensor(opponents.policy_actions(self.opponent, obs, masks), device=self.device)
            return sanitise(actions.long().view(-1), masks)
        if self.snapshot_pool is not None:
            return sanitise(
                self.snapshot_pool(observe(self.dex, self.state, 1, self.max_turns, forced), masks, draws), masks
            )
        if self.opponent == "random":
            return opponents.random_choice(masks, draws)
        return opponents.SCRIPTED[self.opponent](self.dex, self.state, 1, masks, draws)

    def _opponent_replacement(self, masks: torch.Tensor, draws: torch.Tensor, replace: torch.Tensor) -> torch.Tensor:
        """The opponent's pick of a Pokémon to replace its fainted active (used only where ``replace``)."""
        if isinstance(self.opponent, str) and self.opponent in opponents.SCRIPTED:
            return opponents.replacement_choice(self.opponent, self.dex, self.state, 1, masks, draws)
        return self._opponent_choice(masks, draws, replace)

    def _transition(self, actions: torch.Tensor):
        state = self.state
        draws = torch.rand(self.num_envs, self._draw_width, generator=self.generator, device=self.device)
        turn_draws, choice_draws, replace_draws = draws.split(
            [battle.DRAWS_PER_TURN, opponents.DRAWS_PER_CHOICE, opponents.DRAWS_PER_CHOICE], 1
        )
        agent = sanitise(actions, action_masks(state, 0, state.forced[:, 0]))
        foe = self._opponent_choice(action_masks(state, 1, self._no_one), choice_draws, self._no_one)
        forced_step = state.forced[:, 0].clone() if self.recording else None
        events = play_turn(self.dex, state, torch.stack((agent, foe), 1), turn_draws, record=self.recording)
        # A fainted opponent is replaced at once (a free switch); a fainted agent Pokémon in the agent's next step.
        has_bench = (state.hp[:, :, 1:] > 0).any(-1)
        fainted = state.hp[:, :, 0] <= 0
        replace = fainted[:, 1] & has_bench[:, 1]
        replacement = self._opponent_replacement(action_masks(state, 1, replace), replace_draws, replace)
        target = (replacement - battle.SWITCH_BASE + 1).clamp(1, SLOTS - 1)
        switch_in(state, torch.stack((self._no_one, replace), 1), torch.stack((target, target), 1))
        state.forced[:, 0] = fainted[:, 0] & has_bench[:, 0]
        reward, terminated, truncated, info = self._outcome()
        if self.recording:
            info["battle_events"] = self._log_events(events, forced_step, replace, info)
        return reward, terminated, truncated, info

    def _outcome(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict[str, Any]]:
        """Side 0's reward, the episode ends and ``win``/``draw``/``loss`` after a step."""
        state = self.state
        lost = alive_counts(state) == 0
        terminated = lost[:, 0] | lost[:, 1]
        win = lost[:, 1] & ~lost[:, 0]
        loss = lost[:, 0] & ~lost[:, 1]
        truncated = ~terminated & (state.turn >= self.max_turns)
        draw = (lost[:, 0] & lost[:, 1]) | truncated
        outcome = win.float() - loss.float()
        if self.reward_kind == "win":
            reward = outcome
        else:
            value = self._position_value() + VICTORY_VALUE * outcome
            reward = value - self.potential
            self.potential.copy_(value)
        return reward, terminated, truncated, {"win": win, "draw": draw, "loss": loss}

    def _log_events(self, events: dict, forced_step: torch.Tensor, replaced: torch.Tensor, info: dict) -> dict:
        state = self.state
        events.update(
            forced_step=forced_step,
            replaced=replaced,
            active=state.species[:, :, 0].clone(),
            hp=state.hp.clone(),
            win=info["win"],
            loss=info["loss"],
            draw=info["draw"],
            turn=state.turn.clone(),
        )
        return events

    # ----------------------------------------------------------------- both sides (the PettingZoo env)
    def observe_side(self, side: int) -> torch.Tensor:
        """``[B, OBS_DIM]``: side ``side``'s observation (0: the agent's, as ``step`` returns it)."""
        return observe(self.dex, self.state, side, self.max_turns, self.state.forced[:, side])

    def side_action_masks(self, side: int) -> torch.Tensor:
        """``[B, 9]``: side ``side``'s valid actions."""
        return action_masks(self.state, side, self.state.forced[:, side])

    def play_both(self, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict[str, Any]]:
        """One step with both sides' actions ``[B, 2]`` and no opponent policy, and no autoreset.

        A fainted Pokémon on either side is replaced in that side's next step (the other side sits it out).
        Returns side 0's reward (side 1's is its negative), ``terminated``, ``truncated`` and the outcomes.
        """
        state = self.state
        draws = torch.rand(self.num_envs, battle.DRAWS_PER_TURN, generator=self.generator, device=self.device)
        chosen = torch.stack([sanitise(actions[:, side], self.side_action_masks(side)) for side in range(SIDES)], 1)
        forced_step = state.forced[:, 0].clone() if self.recording else None
        events = play_turn(self.dex, state, chosen, draws, record=self.recording)
        state.forced.copy_((state.hp[:, :, 0] <= 0) & (state.hp[:, :, 1:] > 0).any(-1))
        reward, terminated, truncated, info = self._outcome()
        if self.recording:
            info["battle_events"] = self._log_events(events, forced_step, self._no_one, info)
        return reward, terminated, truncated, info

    def _observe(self) -> torch.Tensor:
        return observe(self.dex, self.state, 0, self.max_turns, self.state.forced[:, 0])

    # ----------------------------------------------------------------- declared abilities
    def action_masks(self) -> torch.Tensor:
        """``[num_envs, 9]``: moves with PP (Struggle on slot 0 when none has), living bench Pokémon; a forced switch allows only switches."""
        return action_masks(self.state, 0, self.state.forced[:, 0])

    @property
    def action_names(self) -> tuple[str, ...]:
        return ACTION_NAMES

    def options(self) -> dict[str, Any]:
        """The constructor options (``opponent`` is the policy object itself where one was given)."""
        return dict(self._options)

    def training_callbacks(self) -> list[SelfPlayCallback]:
        """``opponent="self"``: the :class:`~rlcourse.envs.pokemon.self_play.SelfPlayCallback` that fills the pool."""
        return [] if self._self_play is None else [self._self_play]

    def render_opening(self, index: int = 0) -> list[str]:
        """Both teams of battle ``index`` and the leads, as log lines."""
        from rlcourse.envs.pokemon.battle_log import opening_lines

        return opening_lines(self, index)

    def render_turn(self, info: dict[str, Any], index: int = 0) -> list[str]:
        """The last step of battle ``index`` as Showdown-style log lines (needs :attr:`recording`)."""
        from rlcourse.envs.pokemon.battle_log import turn_lines

        if "battle_events" not in info:
            raise ValueError("render_turn needs the step to be taken with env.recording = True")
        return turn_lines(self, info["battle_events"], index)

    def play_transcripts(self, policy, num_episodes: int, seed: int | None = None) -> list[str]:
        """``num_episodes`` battles played by ``policy(obs, action_masks)`` on a fresh copy of this env, as battle logs."""
        from rlcourse.envs.pokemon.battle_log import play_battles

        env = self.spawn(num_episodes)
        env.recording = True
        return play_battles(env, policy, seed)
