"""Fixed-seed trajectory digests of ``rlcourse/PokemonBattle-v0``: a faster step must play exactly the same battles.

Each digest hashes what a user sees over 96 steps of 64 battles (a few battles each): observations, rewards, ends,
outcomes, episode statistics, final observations, action masks and the Showdown-style battle log. The
expected values were recorded from the first, unoptimised implementation of the rules, before any speed
work; a change of one HP point, one random draw or one log word anywhere changes its digest.
"""

from __future__ import annotations

import hashlib

import pytest
import torch

from rlcourse.envs.pokemon.env import PokemonBattleVecEnv

NUM_ENVS, STEPS, LOGGED = 64, 96, 4


def first_valid_policy(obs: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """A deterministic policy object for the ``opponent=callable`` path: the last valid action."""
    return 8 - masks.flip(-1).long().argmax(-1)


CASES = {
    "random": {"opponent": "random"},
    "max_damage": {"opponent": "max_damage"},
    "heuristic": {"opponent": "heuristic"},
    "self_empty_pool": {"opponent": "self"},
    "policy": {"opponent": first_valid_policy},
    "shaped_six": {"opponent": "heuristic", "reward": "shaped", "team_size": 6, "max_turns": 40},
    "fixed_teams": {
        "opponent": "max_damage",
        "team_size": 2,
        "team": ["charizard", {"species": "gengar", "moves": ["hypnosis", "shadowball", "toxic"], "level": 90}],
        "opponent_team": ["blissey", "gyarados", "jolteon"],
    },
}


def _feed(digest, *tensors: torch.Tensor) -> None:
    for tensor in tensors:
        digest.update(tensor.detach().contiguous().numpy().tobytes())


def trajectory_digest(options: dict, recording: bool = True, seed: int = 7) -> str:
    """The sha256 of one fixed-seed run (see the module docstring); half the actions may be invalid."""
    env = PokemonBattleVecEnv(NUM_ENVS, **options)
    env.recording = recording
    digest = hashlib.sha256()
    obs, _ = env.reset(seed=seed)
    _feed(digest, obs)
    for index in range(LOGGED):
        digest.update("\n".join(env.render_opening(index)).encode())
    generator = torch.Generator().manual_seed(seed)
    for step in range(STEPS):
        masks = env.action_masks()
        uniforms = torch.rand(NUM_ENVS, 9, generator=generator)
        if step % 2:
            actions = uniforms.argmax(-1)  # any action: an invalid one is replaced by the lowest valid one
        else:
            actions = torch.where(masks, uniforms, -1.0).argmax(-1)
        obs, reward, terminated, truncated, info = env.step(actions)
        final = info["final_info"]
        _feed(digest, masks, obs, reward, terminated, truncated, info["final_obs"])
        _feed(digest, final["win"], final["draw"], info["episode"]["r"], info["episode"]["l"])
        if recording:
            for index in range(LOGGED):
                digest.update("\n".join(env.render_turn(info, index)).encode())
    return digest.hexdigest()


def both_sides_digest(seed: int = 3) -> str:
    """The same for :meth:`~PokemonBattleVecEnv.play_both` (the PettingZoo env's step): both sides choose."""
    env = PokemonBattleVecEnv(NUM_ENVS, team_size=4)
    env.recording = True
    env.reset(seed=seed)
    generator = torch.Generator().manual_seed(seed)
    digest = hashlib.sha256()
    for _ in range(STEPS):
        observations = [env.observe_side(side) for side in (0, 1)]
        masks = [env.side_action_masks(side) for side in (0, 1)]
        actions = torch.stack(
            [torch.where(m, torch.rand(NUM_ENVS, 9, generator=generator), -1.0).argmax(-1) for m in masks], 1
        )
        reward, terminated, truncated, info = env.play_both(actions)
        _feed(digest, *observations, *masks, reward, terminated, truncated, info["win"], info["draw"])
        digest.update("\n".join(env.render_turn(info, 0)).encode())
        ended = terminated | truncated
        env._reset_where(ended)
    return digest.hexdigest()


EXPECTED = {
    "fixed_teams": "d30c8708280c73277a1b289ab6093de9686024a1ac44d872fca9db3a914c85dc",
    "heuristic": "e7e1a33b9d30afa0e2ad0a2e13ae95164c68a940e682dbb4eb617a779b8e3c9e",
    "max_damage": "58c21cbf1008aa01ece4957ef1a1dc6a0b74253fbf5865d0c45936c2ca67c339",
    "policy": "22a5f0167ce6447c38129142d2bb9e1d43ad3fd9de9ce70ef6cb989ecdf3c401",
    "random": "67727df25f63d7386ca1ab8b10dd15d595445b6a98d16293d00cace5be7d0061",
    "self_empty_pool": "67727df25f63d7386ca1ab8b10dd15d595445b6a98d16293d00cace5be7d0061",
    "shaped_six": "8c178a797a93c6264e9994b51213c26cf1987190707a3daa66fc52e98846e842",
}
EXPECTED_UNRECORDED_RANDOM = "47f6c263280fc01c2cdcc5571e470fb93a25294fb39a6880142165441f2228a6"
EXPECTED_BOTH_SIDES = "56114956f8e2d8195e190c8a1d56e327eb5b56e0803481936c2bfdb266d1b585"


@pytest.mark.parametrize("case", sorted(CASES))
def test_fixed_seed_battles_are_unchanged(case):
    assert trajectory_digest(CASES[case]) == EXPECTED[case]


def test_recording_changes_nothing_but_the_log():
    assert trajectory_digest(CASES["random"], recording=False) == EXPECTED_UNRECORDED_RANDOM


def test_both_sides_battles_are_unchanged():
    assert both_sides_digest() == EXPECTED_BOTH_SIDES
