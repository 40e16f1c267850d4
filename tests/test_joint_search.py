"""kgbuild.extract.joint_search makes the same choices as gliner2's own candidate builder and optimizers.

Two sources of problems: random ones (seeded), which exercise every constraint kind including one the module
does not compile (``AcyclicRelation``, checked by gliner2's generic path), and real ones scored by a GLiNER2
built at test time on the kgbuild schema the constrained-decoding tests use.
"""

from __future__ import annotations

import random

import pytest
from gliner2.joint_ie.candidates import CandidateBuilder, EdgeCandidate, JointProblem, NodeCandidate
from gliner2.joint_ie.constraints import (
    AcyclicRelation,
    EntityOverlapPolicy,
    InverseRelation,
    MaxRelationsPerHead,
    MaxRelationsPerTail,
    NoSelfLoops,
    SymmetricRelation,
    TypedEndpoints,
    UniqueRelationPair,
    UniqueRelationSlot,
)
from gliner2.joint_ie.optimizers import BeamOptimizer, GreedyOptimizer

from kgbuild.extract.joint_search import IndexedBeamOptimizer, IndexedGreedyOptimizer, ListCandidateBuilder

TYPES = ("person", "company", "place")
RELATIONS = ("works_for", "employs", "spouse_of", "located_in", "part_of")


def _random_problem(rng: random.Random, *, generic: bool) -> JointProblem:
    nodes: dict[tuple, NodeCandidate] = {}
    for _ in range(rng.randint(2, 14)):
        start = rng.randint(0, 30)
        node = NodeCandidate(rng.choice(TYPES), start, start + rng.randint(1, 4), rng.uniform(-2.0, 2.0))
        nodes.setdefault(node.key, node)
    ids = list(nodes)
    edges = []
    for _ in range(rng.randint(0, 60)):
        relation = rng.choice(RELATIONS)
        edges.append(EdgeCandidate(
            relation, rng.choice(ids), rng.choice(ids), rng.uniform(-3.0, 2.0),
            slot=rng.randint(0, 2), hypothesis=relation, count_alternative=rng.choice([None, 0, 1]),
        ))
    unique_edges = list({edge.candidate_id: edge for edge in edges}.values())
    constraints = [
        EntityOverlapPolicy(rng.choice(["allow", "disallow", "nested"])),
        TypedEndpoints("works_for", ("person",), ("company",)),
        TypedEndpoints("employs", ("company",), ("person",)),
        TypedEndpoints("located_in", (), ("place",)),
        NoSelfLoops("spouse_of"), NoSelfLoops(None),
        UniqueRelationPair("spouse_of", directed=False), UniqueRelationPair(None),
        UniqueRelationSlot("works_for", "slot"), UniqueRelationSlot("located_in", "head"),
        UniqueRelationSlot("part_of", "tail"),
        MaxRelationsPerHead(1, "works_for"), MaxRelationsPerHead(2, None), MaxRelationsPerTail(1, "part_of"),
        SymmetricRelation("spouse_of"), InverseRelation("works_for", "employs"),
    ]
    if generic:
        constraints.append(AcyclicRelation("part_of"))
    return JointProblem(tuple(nodes.values()), tuple(unique_edges), tuple(constraints))


@pytest.mark.parametrize("generic", [False, True], ids=["compiled-constraints", "with-a-generic-constraint"])
def test_indexed_optimizers_choose_what_gliner2s_own_choose(generic):
    rng = random.Random(20261130 + generic)
    differing = []
    for case in range(150):
        problem = _random_problem(rng, generic=generic)
        for stock, indexed in ((BeamOptimizer(8), IndexedBeamOptimizer(8)), (GreedyOptimizer(), IndexedGreedyOptimizer())):
            expected, found = stock.optimize(problem), indexed.optimize(problem)
            if expected != found:
                differing.append((case, type(stock).__name__, expected, found))
    assert not differing, differing[:2]


def test_the_random_problems_exercise_the_constraints():
    """Guards the test above against problems too easy to tell the optimizers apart on."""
    rng = random.Random(20261130)
    solutions = [BeamOptimizer(8).optimize(_random_problem(rng, generic=True)) for _ in range(150)]
    assert sum(len(s.edges) >= 3 for s in solutions) >= 15
    assert sum(not s.feasible for s in solutions) >= 10  # companions that broke a constraint: the empty answer
    assert sum(e.derived for s in solutions for e in s.edges) >= 10  # symmetric and inverse companions


def test_real_problems_decode_the_same(untrained_checkpoint):
    from kgbuild.extract.constrained import JointDecoder
    from kgbuild.extract.gliner import load_gliner2
    from tests.test_extract import _constrained_schema

    model = load_gliner2(str(untrained_checkpoint))
    decoder = JointDecoder(model, _constrained_schema())
    engine, compiled, config = decoder.engine, decoder.compiled, decoder.config
    texts = ["Ann Lee married Bo Lee in Paris and works for Acme Corp.",
             "Acme Corp employs Carl Diaz, whose wife Dana Diaz founded Bolt Ltd in Lyon."]
    lattices = engine.batch_score(texts, compiled, config=config)
    options = dict(candidate_threshold=config.candidate_threshold, relation_role_threshold=config.relation_role_threshold,
                   top_k_entities=config.top_k_entities, top_k_roles=config.top_k_roles)
    for lattice in lattices:
        stock_problem = engine._problem_from_lattice(lattice, compiled, CandidateBuilder(**options))
        problem = engine._problem_from_lattice(lattice, compiled, ListCandidateBuilder(**options))
        assert problem == stock_problem
        assert len(problem.edges) > 20  # an untrained model leaves many candidates to choose among
        assert IndexedBeamOptimizer(config.beam_size).optimize(problem) == BeamOptimizer(config.beam_size).optimize(problem)
