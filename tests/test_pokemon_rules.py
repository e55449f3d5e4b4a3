"""The battle rules against numbers worked out by hand with the games' rounding (Gen 9, IV 31, EV 0, neutral).

Each damage case gives the hand computation in its comment, at both ends of the random range
(roll 0 = 85 %, roll 15 = 100 %), and checks it twice: through :func:`rules.damage` and through a
whole turn of the battle code with the random draws chosen.
"""

from __future__ import annotations

import pytest
import torch

from rlcourse.envs.pokemon import battle, rules
from rlcourse.envs.pokemon.dex import BURN, HEALTHY, PARALYSIS, POISON, SLEEP, TOXIC, TYPES, load_dex
from rlcourse.envs.pokemon.env import PokemonBattleVecEnv
from rlcourse.envs.pokemon.moves import ACCURACY, CRIT, DRAWS_PER_MOVE, PARA, ROLL, SECONDARY, SLEEP_TURNS, THAW

DEX = load_dex()


def kind(name: str) -> int:
    return TYPES.index(name)


def species(name: str) -> int:
    return DEX.species_index[name]


def multiplier(attacking: str, *defending: str) -> float:
    types = [kind(t) for t in defending] + [len(TYPES)] * (2 - len(defending))
    return float(rules.effectiveness(DEX.type_chart, torch.tensor(kind(attacking)), torch.tensor(types)))


@pytest.mark.parametrize(
    "attacking, defending, expected",
    [
        ("Water", ("Fire",), 2.0),
        ("Electric", ("Ground",), 0.0),
        ("Fire", ("Water",), 0.5),
        ("Normal", ("Ghost",), 0.0),
        ("Ghost", ("Normal",), 0.0),
        ("Fighting", ("Steel",), 2.0),
        ("Dragon", ("Fairy",), 0.0),
        ("Ice", ("Dragon", "Ground"), 4.0),  # Garchomp
        ("Grass", ("Fire", "Flying"), 0.25),  # Charizard
        ("Fire", ("Water", "Dragon"), 0.25),  # Kingdra
        ("Ground", ("Fire", "Flying"), 0.0),
    ],
)
def test_type_chart_spot_checks(attacking, defending, expected):
    assert multiplier(attacking, *defending) == expected


def test_species_facts_come_from_the_pokedex():
    assert DEX.base_stats[species("charizard")].tolist() == [78, 84, 78, 109, 85, 100]
    assert [TYPES[t] for t in DEX.species_types[species("venusaur")].tolist()] == ["Grass", "Poison"]
    assert "pikachu" not in DEX.species_index and "ivysaur" not in DEX.species_index  # not fully evolved
    assert "arceus" in DEX.species_index and "lucario" in DEX.species_index  # gen 4's last and a gen-4 species


def test_stats_at_level_100_and_50():
    # HP = floor((2*78 + 31) * L / 100) + L + 10; others floor((2*base + 31) * L / 100) + 5
    base = DEX.base_stats[species("charizard")]
    assert rules.stat_values(base, torch.tensor(100)).tolist() == [297, 204, 192, 254, 206, 236]
    # L50: floor(187/2)=93 +60; floor(199/2)=99 +5; floor(187/2)=93+5; floor(249/2)=124+5; floor(201/2)=100+5; floor(231/2)=115+5
    assert rules.stat_values(base, torch.tensor(50)).tolist() == [153, 104, 98, 129, 105, 120]


def test_stat_stages_floor_as_the_games_do():
    stat = torch.tensor(101)
    expected = {-6: 25, -2: 50, -1: 67, 0: 101, 1: 151, 2: 202, 6: 404}  # 101*2/8, 101/2, 101*2/3, ..., 101*3/2=151.5
    for stage, value in expected.items():
        assert int(rules.staged(stat, torch.tensor(stage))) == value, stage


def test_modify_rounds_a_half_down():
    assert int(rules.modify(torch.tensor(83), rules.STAB_4096)) == 124  # 124.5 -> 124
    assert int(rules.modify(torch.tensor(73), rules.STAB_4096)) == 109  # 109.5 -> 109
    assert int(rules.modify(torch.tensor(105), rules.HALF_4096)) == 52  # 52.5 -> 52
    assert int(rules.modify(torch.tensor(70), rules.STAB_4096)) == 105


# attacker, move, defender, (damage at roll 0, at roll 15), worked by hand at level 100
DAMAGE_CASES = {
    # base: 42*90*254/236 = 4068 -> /50 = 81 -> +2 = 83; roll 85%: 70, STAB 105, x2 = 210; roll 100%: 83, STAB 124 (124.5), x2 = 248
    "super effective": ("charizard", "flamethrower", "venusaur", (210, 248)),
    # base: 42*90*254/246 = 3902 -> 78 -> 80; 85%: 68, STAB 102, x0.5 = 51; 100%: 80, STAB 120, x0.5 = 60
    "resisted": ("charizard", "flamethrower", "blastoise", (51, 60)),
    # base: 42*90*206/206 = 3780 -> 75 -> 77; 85%: 65, no STAB, x4 = 260; 100%: 77 x4 = 308
    "dual-type 4x": ("blastoise", "icebeam", "garchomp", (260, 308)),
    # base: 42*90*254/226 = 4248 -> 84 -> 86; 85%: 73, STAB 109 (109.5), /2 = 54, /2 = 27; 100%: 86, STAB 129, /4 = 32
    "dual-type 0.25x": ("charizard", "flamethrower", "kingdra", (27, 32)),
    "immune": ("garchomp", "earthquake", "charizard", (0, 0)),
}


def battle_env(agent: list, foe: list, num_envs: int = 1, **options) -> PokemonBattleVecEnv:
    env = PokemonBattleVecEnv(num_envs, team=agent, opponent_team=foe, **options)
    env.reset(seed=0)
    return env


def turn_draws(num_envs: int = 1, tie: float = 0.0, **per_move) -> torch.Tensor:
    """Draws for one turn: both moves hit, no crit, no secondary, no full paralysis, no thaw, unless told."""
    draws = torch.zeros(num_envs, battle.DRAWS_PER_TURN)
    draws[:, 0] = tie
    defaults = {THAW: 0.99, PARA: 0.99, ACCURACY: 0.0, CRIT: 0.99, ROLL: 0.0, SECONDARY: 0.99, SLEEP_TURNS: 0.0}
    for order in (0, 1):
        for column, value in defaults.items():
            draws[:, 1 + order * DRAWS_PER_MOVE + column] = value
    for key, value in per_move.items():  # e.g. roll0=0.99: the first mover's roll
        column, order = (
            {"thaw": THAW, "para": PARA, "acc": ACCURACY, "crit": CRIT, "roll": ROLL, "sec": SECONDARY}[key[:-1]],
            int(key[-1]),
        )
        draws[:, 1 + order * DRAWS_PER_MOVE + column] = value
    return draws


def play(env: PokemonBattleVecEnv, agent_action: int, foe_action: int, draws: torch.Tensor) -> dict:
    actions = torch.tensor([[agent_action, foe_action]] * env.num_envs)
    return battle.play_turn(env.dex, env.state, actions, draws, record=True)


@pytest.mark.parametrize("case", DAMAGE_CASES)
def test_damage_by_hand_at_both_ends_of_the_random_range(case):
    attacker, move, defender, (low, high) = DAMAGE_CASES[case]
    for roll_draw, expected in ((0.0, low), (0.999, high)):
        # the defender only growls, and is slower or faster: find the attacker's move in the events by side
        env = battle_env(
            [{"species": attacker, "moves": [move], "level": 100}],
            [{"species": defender, "moves": ["growl"], "level": 100}],
        )
        hp_before = int(env.state.hp[0, 1, 0])
        events = play(env, 0, 0, turn_draws(roll0=roll_draw, roll1=roll_draw))
        assert hp_before - int(env.state.hp[0, 1, 0]) == expected, (case, roll_draw)
        order = 0 if int(events["move0_side"][0]) == 0 else 1
        assert int(events[f"move{order}_dealt"][0]) == expected


def test_damage_formula_pieces_match_the_hand_computation():
    base = rules.base_damage(torch.tensor(100), torch.tensor(90), torch.tensor(254), torch.tensor(236))
    assert int(base) == 83
    no, yes = torch.tensor(False), torch.tensor(True)
    assert int(rules.damage(base, no, torch.tensor(0), yes, torch.tensor(2.0), no)) == 210
    assert int(rules.damage(base, no, torch.tensor(15), yes, torch.tensor(2.0), no)) == 248
    # a crit: floor(83 * 1.5) = 124 before the roll; 100%: STAB 186, x2 = 372
    assert int(rules.damage(base, yes, torch.tensor(15), yes, torch.tensor(2.0), no)) == 372
    # burn on a physical hit: 210 -> pokeRound(105) = 105
    assert int(rules.damage(base, no, torch.tensor(0), yes, torch.tensor(2.0), yes)) == 105
    # at least 1 when not immune, 0 when immune
    one = torch.tensor(3)
    assert int(rules.damage(one, no, torch.tensor(0), no, torch.tensor(0.25), no)) == 1
    assert int(rules.damage(one, no, torch.tensor(0), no, torch.tensor(0.0), no)) == 0


def test_turn_order_priority_then_speed_then_coin():
    # Garchomp (speed 102) outspeeds Snorlax (30); Extreme Speed (+2) lets a slow user go first
    env = battle_env(
        [{"species": "snorlax", "moves": ["bodyslam", "extremespeed"]}],
        [{"species": "garchomp", "moves": ["dragonclaw"]}],
    )
    assert int(play(env, 0, 0, turn_draws())["first"][0]) == 1
    env = battle_env(
        [{"species": "snorlax", "moves": ["bodyslam", "extremespeed"]}],
        [{"species": "garchomp", "moves": ["dragonclaw"]}],
    )
    assert int(play(env, 1, 0, turn_draws())["first"][0]) == 0
    # a speed tie (the same species and level) goes by the coin
    same = [{"species": "snorlax", "moves": ["bodyslam"], "level": 80}]
    firsts = {int(play(battle_env(same, same), 0, 0, turn_draws(tie=tie))["first"][0]) for tie in (0.2, 0.8)}
    assert firsts == {0, 1}


def test_paralysis_halves_speed():
    env = battle_env(
        [{"species": "garchomp", "moves": ["dragonclaw"]}], [{"species": "snorlax", "moves": ["bodyslam"]}]
    )
    speed = int(env.state.stats[0, 0, 0, 5])
    env.state.status[0, 0, 0] = PARALYSIS
    assert int(battle.effective_speed(env.state)[0, 0]) == speed // 2


def test_faint_forced_switch_and_masks():
    # a level-5 Magikarp-like lead faints to a level-100 attacker; the agent must switch, for free
    env = battle_env(
        [{"species": "venusaur", "moves": ["tackle"], "level": 5}, {"species": "blastoise", "moves": ["surf"]}],
        [{"species": "charizard", "moves": ["flamethrower"], "level": 100}],
        opponent="max_damage",
    )
    obs, reward, terminated, truncated, _ = env.step(torch.tensor([0]))
    assert int(env.state.hp[0, 0, 0]) == 0 and bool(env.state.forced[0, 0]) and not bool(terminated[0])
    masks = env.action_masks()[0].tolist()
    assert masks == [False] * 4 + [True] + [False] * 4, "only the living bench Pokémon may come in"
    assert obs[0, -2] == 1.0, "the observation flags the forced switch"
    foe_hp = int(env.state.hp[0, 1, 0])
    env.step(torch.tensor([4]))
    assert env.dex.species_ids[int(env.state.species[0, 0, 0])] == "blastoise"
    assert int(env.state.hp[0, 0, 0]) == int(env.state.stats[0, 0, 0, 0]), (
        "the foe does not move during a forced switch"
    )
    assert int(env.state.hp[0, 1, 0]) == foe_hp and not bool(env.state.forced[0, 0])
    assert env.action_masks()[0].tolist()[:4] == [True, False, False, False]  # one move; slot 1 (fainted) is out


def test_an_invalid_action_becomes_the_first_valid_one():
    env = battle_env([{"species": "venusaur", "moves": ["tackle"]}], [{"species": "charizard", "moves": ["growl"]}])
    env.step(torch.tensor([7]))  # a switch to an empty slot
    assert int(env.state.pp[0, 0, 0, 0]) == int(DEX.move_pp[DEX.move_index["tackle"]]) * 8 // 5 - 1


def test_win_and_loss_are_detected_on_the_turn_they_happen():
    win_env = battle_env(
        [{"species": "blastoise", "moves": ["surf"], "level": 100}],
        [{"species": "charizard", "moves": ["growl"], "level": 5}],
    )
    _, reward, terminated, truncated, info = win_env.step(torch.tensor([0]))
    assert bool(terminated[0]) and not bool(truncated[0]) and float(reward[0]) == 1.0
    assert bool(info["final_info"]["win"][0]) and not bool(info["final_info"]["draw"][0])
    assert int(info["episode"]["l"][0]) == 1
    loss_env = battle_env(
        [
            {"species": "charizard", "moves": ["growl"], "level": 5},
            {"species": "venusaur", "moves": ["growl"], "level": 5},
        ],
        [{"species": "blastoise", "moves": ["surf"], "level": 100}],
        opponent="max_damage",
    )
    steps = 0
    while True:
        _, reward, terminated, truncated, info = loss_env.step(loss_env.action_masks().long().argmax(-1))
        steps += 1
        if bool(terminated[0]):
            break
        assert float(reward[0]) == 0.0
    assert steps == 3, "turn 1: lead faints; step 2: forced switch; turn 2 (step 3): the last one faints"
    assert float(reward[0]) == -1.0 and not bool(info["final_info"]["win"][0])


def test_the_turn_limit_truncates_as_a_draw():
    wall = [{"species": "blissey", "moves": ["growl"]}]
    env = battle_env(wall, wall, max_turns=3)
    for _step in range(3):
        _, reward, terminated, truncated, info = env.step(torch.tensor([0]))
    assert bool(truncated[0]) and not bool(terminated[0]) and float(reward[0]) == 0.0
    assert bool(info["final_info"]["draw"][0]) and not bool(info["final_info"]["win"][0])


def test_burn_poison_and_bad_poison_residuals():
    env = battle_env([{"species": "blissey", "moves": ["growl"]}], [{"species": "snorlax", "moves": ["growl"]}])
    max_hp = int(env.state.stats[0, 0, 0, 0])
    for status, expected in (
        (BURN, [max_hp // 16] * 2),
        (POISON, [max_hp // 8] * 2),
        (TOXIC, [max_hp // 16, 2 * max_hp // 16]),
    ):
        env.reset(seed=0)
        env.state.status[0, 0, 0] = status
        losses = []
        for _ in range(2):
            before = int(env.state.hp[0, 0, 0])
            play(env, 0, 0, turn_draws())
            losses.append(before - int(env.state.hp[0, 0, 0]))
        assert losses == expected, status


def test_burn_halves_physical_damage():
    def dealt(burned: bool) -> int:
        env = battle_env(
            [{"species": "garchomp", "moves": ["dragonclaw"]}], [{"species": "snorlax", "moves": ["growl"]}]
        )
        if burned:
            env.state.status[0, 0, 0] = BURN
        before = int(env.state.hp[0, 1, 0])
        play(env, 0, 0, turn_draws(roll0=0.999, roll1=0.999))
        return before - int(env.state.hp[0, 1, 0])

    assert dealt(True) == int(rules.modify(torch.tensor(dealt(False)), rules.HALF_4096))


def test_full_paralysis_happens_about_a_quarter_of_the_time():
    n = 2000
    env = battle_env(
        [{"species": "garchomp", "moves": ["dragonclaw"]}], [{"species": "blissey", "moves": ["growl"]}], num_envs=n
    )
    env.state.status[:, 0, 0] = PARALYSIS
    draws = turn_draws(n)
    gen = torch.Generator().manual_seed(0)
    for order in (0, 1):
        draws[:, 1 + order * DRAWS_PER_MOVE + PARA] = torch.rand(n, generator=gen)
    events = play(env, 0, 0, draws)
    agent_order = torch.where(events["move0_side"] == 0, 0, 1)
    stopped = torch.where(agent_order == 0, events["move0_outcome"], events["move1_outcome"]) == 5
    assert 0.21 < stopped.float().mean() < 0.29


@pytest.mark.parametrize("sleep_draw, turns", [(0.0, 1), (0.5, 2), (0.99, 3)])
def test_sleep_lasts_one_to_three_turns_and_the_sleeper_moves_on_waking(sleep_draw, turns):
    env = battle_env([{"species": "breloom", "moves": ["spore"]}], [{"species": "snorlax", "moves": ["bodyslam"]}])
    draws = turn_draws()
    draws[:, 1 + SLEEP_TURNS] = sleep_draw  # Breloom is faster: its Spore is the first move
    events = play(env, 0, 0, draws)
    assert int(env.state.status[0, 1, 0]) == SLEEP
    assert int(events["move1_outcome"][0]) == 2, "a sleeper put to sleep before it moves loses that turn too"
    turns_asleep = 1
    while int(env.state.status[0, 1, 0]) == SLEEP:
        events = play(env, 0, 0, turn_draws())  # Spore fails now: the target already sleeps
        turns_asleep += int(events["move1_outcome"][0]) == 2
    assert turns_asleep == turns
    assert bool(events["move1_woke"][0]) and int(events["move1_outcome"][0]) == 1, "it moves on the turn it wakes"


def test_status_immunities():
    env = battle_env(
        [{"species": "rotom" if "rotom" in DEX.species_index else "jolteon", "moves": ["thunderwave"]}],
        [{"species": "garchomp", "moves": ["growl"]}],
    )
    play(env, 0, 0, turn_draws())
    assert int(env.state.status[0, 1, 0]) == HEALTHY, "Thunder Wave does not affect a Ground type"
    env = battle_env([{"species": "breloom", "moves": ["spore"]}], [{"species": "venusaur", "moves": ["growl"]}])
    play(env, 0, 0, turn_draws())
    assert int(env.state.status[0, 1, 0]) == HEALTHY, "Grass types ignore powder moves"
    env = battle_env([{"species": "gengar", "moves": ["willowisp"]}], [{"species": "charizard", "moves": ["growl"]}])
    play(env, 0, 0, turn_draws())
    assert int(env.state.status[0, 1, 0]) == HEALTHY, "Fire types cannot be burned"


def test_boosts_recoil_drain_and_stage_limits():
    env = battle_env([{"species": "garchomp", "moves": ["swordsdance"]}], [{"species": "blissey", "moves": ["growl"]}])
    for expected in (1, 2, 3, 4):  # Swords Dance +2, then Blissey's Growl -1 (it moves second)
        play(env, 0, 0, turn_draws())
        assert int(env.state.boosts[0, 0, 0]) == expected
    env = battle_env(
        [{"species": "garchomp", "moves": ["swordsdance"]}], [{"species": "blissey", "moves": ["calmmind"]}]
    )
    for expected in (2, 4, 6, 6):  # stages stop at +6
        events = play(env, 0, 0, turn_draws())
        assert int(env.state.boosts[0, 0, 0]) == expected
    assert events["move0_self_stages"][0, 0] == 0 and events["move0_self_stage_tried"][0, 0] == 2
    # Brave Bird: recoil round(dealt * 33/100), at least 1
    env = battle_env([{"species": "staraptor", "moves": ["bravebird"]}], [{"species": "blissey", "moves": ["growl"]}])
    user_before, foe_before = int(env.state.hp[0, 0, 0]), int(env.state.hp[0, 1, 0])
    play(env, 0, 0, turn_draws())
    dealt = foe_before - int(env.state.hp[0, 1, 0])
    assert dealt > 0 and user_before - int(env.state.hp[0, 0, 0]) == max(1, round(dealt * 33 / 100 + 1e-9))
    # Giga Drain: heals round(dealt / 2), a half rounding up
    env = battle_env([{"species": "venusaur", "moves": ["gigadrain"]}], [{"species": "blastoise", "moves": ["growl"]}])
    env.state.hp[0, 0, 0] = 1
    events = play(env, 0, 0, turn_draws())
    assert int(events["move0_side"][0]) == 0  # Venusaur (80) outspeeds Blastoise (78)
    dealt = int(events["move0_dealt"][0])
    assert int(events["move0_healed"][0]) == (dealt + 1) // 2 and int(env.state.hp[0, 0, 0]) == 1 + (dealt + 1) // 2
