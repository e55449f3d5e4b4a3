"""The linear-chain CRF: Viterbi and the partition function against brute force over every tag sequence, the
BIO constraints, and the log-likelihood's gradients against finite differences (double precision)."""

from __future__ import annotations

import itertools

import pytest
import torch

from rlcourse.supervised.nlu.crf import LinearChainCRF, bio_constraints

pytestmark = pytest.mark.usefixtures("one_torch_thread")
TAGS = ("O", "B-city", "I-city", "B-date", "I-date")


def random_crf(num_tags: int, seed: int, constrained: bool = False, dtype=torch.float32) -> LinearChainCRF:
    torch.manual_seed(seed)
    crf = LinearChainCRF(num_tags, bio_constraints(TAGS) if constrained else None).to(dtype)
    with torch.no_grad():
        for parameter in crf.parameters():
            parameter.normal_()
    return crf


def brute_force(crf: LinearChainCRF, emissions: torch.Tensor, length: int) -> tuple[list[int], float, float]:
    """The best sequence, its score and log Z of one sentence, by enumerating all K^L tag sequences."""
    scores = {}
    mask = torch.ones(1, length, dtype=torch.bool)
    with torch.no_grad():
        for tags in itertools.product(range(crf.num_tags), repeat=length):
            scores[tags] = float(crf.score(emissions[None, :length], torch.tensor([tags]), mask))
    best = max(scores, key=scores.get)
    return list(best), scores[best], float(torch.logsumexp(torch.tensor(list(scores.values()), dtype=torch.float64), 0))


@pytest.mark.parametrize("constrained", [False, True])
def test_viterbi_and_partition_equal_brute_force_on_short_sentences(constrained):
    crf = random_crf(len(TAGS), seed=3, constrained=constrained)
    lengths = torch.tensor([1, 2, 3, 4, 4, 2])
    emissions = torch.randn(len(lengths), 4, len(TAGS), generator=torch.Generator().manual_seed(4))
    mask = torch.arange(4) < lengths[:, None]
    tags, best = crf.viterbi(emissions, mask)
    log_z = crf.log_partition(emissions, mask)
    for row, length in enumerate(lengths.tolist()):
        path, score, expected_log_z = brute_force(crf, emissions[row], length)
        assert tags[row, :length].tolist() == path
        assert tags[row, length:].tolist() == [0] * (4 - length)  # padding is tagged O
        assert best[row].item() == pytest.approx(score, abs=1e-4)
        assert log_z[row].item() == pytest.approx(expected_log_z, abs=1e-4)


def test_bio_constraints_forbid_an_inside_tag_without_its_beginning():
    moves, first = bio_constraints(TAGS)
    assert first.tolist() == [True, True, False, True, False]
    assert moves[TAGS.index("B-city"), TAGS.index("I-city")] and moves[TAGS.index("I-city"), TAGS.index("I-city")]
    assert not moves[TAGS.index("O"), TAGS.index("I-city")] and not moves[TAGS.index("B-date"), TAGS.index("I-city")]
    # emissions that shout I-city everywhere still decode to a well-formed sequence
    crf = LinearChainCRF(len(TAGS), (moves, first))
    emissions = torch.full((1, 3, len(TAGS)), -5.0)
    emissions[..., TAGS.index("I-city")] = 5.0
    tags, _ = crf.viterbi(emissions, torch.ones(1, 3, dtype=torch.bool))
    assert [TAGS[t] for t in tags[0].tolist()] == ["B-city", "I-city", "I-city"]


def test_log_likelihood_gradients_equal_finite_differences():
    crf = random_crf(len(TAGS), seed=5, dtype=torch.float64)
    generator = torch.Generator().manual_seed(6)
    emissions = torch.randn(3, 4, len(TAGS), dtype=torch.float64, generator=generator, requires_grad=True)
    tags = torch.randint(len(TAGS), (3, 4), generator=generator)
    mask = torch.arange(4) < torch.tensor([4, 2, 1])[:, None]
    start, transitions, end = (p.detach().clone().requires_grad_() for p in (crf._start, crf._transitions, crf.end))

    def log_likelihood(emissions, start, transitions, end):
        crf._start, crf._transitions, crf.end = start, transitions, end  # plain tensors, so gradcheck can vary them
        return crf.log_likelihood(emissions, tags, mask)

    for name in ("_start", "_transitions", "end"):
        del crf._parameters[name]
    assert torch.autograd.gradcheck(log_likelihood, (emissions, start, transitions, end), eps=1e-6, atol=1e-6)


def test_likelihoods_of_all_sequences_sum_to_one():
    crf = random_crf(3, seed=7, dtype=torch.float64)
    emissions = torch.randn(1, 3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(8))
    mask = torch.ones(1, 3, dtype=torch.bool)
    total = sum(
        torch.exp(crf.log_likelihood(emissions, torch.tensor([tags]), mask)).item()
        for tags in itertools.product(range(3), repeat=3)
    )
    assert total == pytest.approx(1.0, abs=1e-9)
