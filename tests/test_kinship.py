"""Kinship core: normalisation, S_pref (paper Table 3), cosine matrix and pair selection."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from karma_hf.errors import KarmaError
from karma_hf.kinship import Kinship, NoPair, Pair, cosine_matrix, min_max_normalize
from karma_hf.scores import load_scores

# Table 3 of the KARMA paper, "Average Score" column (paper names).
PAPER_AVERAGE = {
    "GPT-4": 0.99,
    "GPT-3.5-turbo": 0.77,
    "bard": 0.86,
    "Llama-2-7b-chat": 0.41,
    "Llama-2-13b-chat": 0.45,
    "Llama-2-70b-chat": 0.58,
    "UltraLM-13b": 0.40,
    "WizardLM-7b": 0.34,
    "WizardLM-13b": 0.45,
    "WizardLM-70b": 0.58,
    "Vicuna-33b": 0.57,
    "Alpaca-7b": 0.16,
    "Falcon-40b-instruct": 0.47,
    "MPT-30b-chat": 0.38,
    "Starchat": 0.05,
    "Pythia-12b": 0.07,
}


@pytest.fixture(scope="module")
def paper() -> Kinship:
    return Kinship.from_table(load_scores("ultrafeedback-paper"))


def kin(rows: dict[str, list[float]], tau: float = 0.1) -> Kinship:
    return Kinship.from_values(
        list(rows),
        [f"b{i}" for i in range(len(next(iter(rows.values()))))],
        np.array(list(rows.values()), dtype=float),
        tau=tau,
    )


def test_s_pref_reproduces_paper_table3(paper: Kinship) -> None:
    assert len(paper.models) == 16
    for model in paper.models:
        expected = PAPER_AVERAGE[paper.display_names[model]]
        # The paper prints its inputs rounded to 2 decimals (MMLU-Pro as a 2-decimal fraction), so
        # S_pref recomputed from them matches the printed average to within one rounding step.
        assert abs(paper.s_pref_of(model) - expected) <= 0.0055, model
    exact = sum(round(paper.s_pref_of(m), 2) == PAPER_AVERAGE[paper.display_names[m]] for m in paper.models)
    assert exact >= 14
    assert round(paper.s_pref_of("gpt-4"), 2) == 0.99
    assert round(paper.s_pref_of("bard"), 2) == 0.86
    assert round(paper.s_pref_of("starchat"), 2) == 0.05


def test_cosine_matrix_properties(paper: Kinship) -> None:
    c = paper.cosine
    assert np.allclose(c, c.T)
    assert np.allclose(np.diag(c), 1.0)
    assert (c >= -1).all() and (c <= 1).all()
    # the only non-kin pair of the paper at tau = 0.1
    below = [(a, b) for i, a in enumerate(paper.models) for j, b in enumerate(paper.models) if i < j and c[i, j] < 0.1]
    assert below == [("starchat", "pythia-12b")]
    assert paper.kinship_of("starchat", "pythia-12b") == pytest.approx(0.0207, abs=1e-3)


def test_min_max_and_constant_benchmark_dropped() -> None:
    values = np.array([[1.0, 5.0, 10.0], [3.0, 5.0, 20.0], [2.0, 5.0, 15.0]])
    norm, ok = min_max_normalize(values)
    assert ok.tolist() == [True, False, True]
    assert np.isfinite(norm).all()
    with pytest.warns(UserWarning, match="b1"):
        k = Kinship.from_values(["a", "b", "c"], ["b0", "b1", "b2"], values)
    assert k.benchmarks == ("b0", "b2") and k.dropped_benchmarks == ("b1",)
    assert k.s_pref.tolist() == [0.0, 1.0, 0.5]


def test_all_zero_model_has_no_kin() -> None:
    # "z" is worst everywhere: its normalised vector is all zeros.
    k = kin({"a": [1.0, 0.9], "b": [0.9, 1.0], "z": [0.0, 0.0]})
    assert np.allclose(k.cosine[2, :2], 0.0) and k.cosine[2, 2] == 1.0
    assert isinstance(k.select("score", ["a", "z"]), NoPair)
    assert k.select("score", ["a", "z"]).reason == "no_kin_above_tau"
    assert cosine_matrix(np.zeros((2, 3)))[0, 1] == 0.0


def test_two_models() -> None:
    k = kin({"hi": [0.9, 0.8], "lo": [0.5, 0.4], "x": [0.0, 0.1]})
    for mode in ("score", "sim", "score_sim"):
        p = k.select(mode, ["lo", "hi"])
        assert isinstance(p, Pair)
        assert (p.chosen, p.rejected) == ("hi", "lo")
        assert p.s_pref_chosen > p.s_pref_rejected
        assert p.kinship == pytest.approx(k.kinship_of("hi", "lo"))
    assert k.select("score", ["hi"]).reason == "fewer_than_two"
    assert k.select("score", []).reason == "fewer_than_two"
    assert k.select("score", ["hi", "hi"]).reason == "fewer_than_two"


def test_three_models_modes_differ() -> None:
    # A is best; B is second-best but points elsewhere; C is a close sibling of A, weaker.
    k = kin({"A": [1.0, 1.0, 0.0], "B": [0.9, 0.0, 1.0], "C": [0.5, 0.5, 0.0], "Z": [0.0, 0.0, 0.0]}, tau=0.1)
    s = k.select("score", ["A", "B", "C"])
    assert (s.chosen, s.rejected) == ("A", "B")  # top two by S_pref, kin (cos 0.64)
    sim = k.select("sim", ["A", "B", "C"])
    assert (sim.chosen, sim.rejected) == ("A", "C")  # cos(A, C) = 1
    ss = k.select("score_sim", ["A", "B", "C"])
    assert (ss.chosen, ss.rejected) == ("A", "C")  # best model, its most similar partner


def test_four_models_tau_filtering() -> None:
    # A and B point in orthogonal directions (cosine 0): not kin at tau 0.1.
    k = kin({"A": [1.0, 0.0], "B": [0.0, 0.95], "C": [0.5, 0.05], "D": [0.05, 0.4]}, tau=0.5)
    s = k.select("score", ["A", "B", "C", "D"])
    assert (s.chosen, s.rejected) == ("A", "C")  # A-B not kin -> next kin pair in S_pref order
    sim = k.select("sim", ["A", "B", "C", "D"])
    assert sim.kinship == pytest.approx(max(k.kinship_of("A", "C"), k.kinship_of("B", "D")))
    ss = k.select("score_sim", ["A", "B", "D"])
    assert ss.reason == "no_kin_above_tau" if isinstance(ss, NoPair) else ss.chosen != "A"
    # with tau = 1.0 nothing is kin but identical directions
    k1 = kin({"A": [1.0, 0.0], "B": [0.0, 1.0], "C": [0.5, 0.6]}, tau=1.0)
    assert k1.select("sim", ["A", "B", "C"]).reason == "no_kin_above_tau"


def test_score_mode_skips_top_model_without_kin() -> None:
    k = kin(
        {"A": [1, 1, 1, 0, 0], "B": [0, 0, 0, 1, 1], "C": [0, 0, 0, 0.9, 0.8], "D": [0.5, 0.5, 0.5, 0, 0]}, tau=0.5
    )
    assert k.ranking() == ["A", "B", "C", "D"]
    # A (best) is kin only with D (same direction); B and C are siblings
    p = k.select("score", ["A", "B", "C"])
    assert (p.chosen, p.rejected) == ("B", "C")  # A has no kin among B, C
    p = k.select("score", ["A", "B", "C", "D"])
    assert (p.chosen, p.rejected) == ("A", "D")


def test_ties_are_dropped_never_random() -> None:
    k = kin({"A": [1.0, 0.0], "B": [0.0, 1.0], "C": [0.2, 0.2]}, tau=0.0)
    # A and B have equal S_pref (0.5): the score pair is a tie.
    assert k.select("score", ["A", "B"]).reason == "tie"
    assert k.select("score", ["A", "B", "C"]).reason == "tie"
    # equally kin pairs: sim breaks the cosine tie by rank (A before B by id at equal S_pref)
    p = k.select("sim", ["A", "B", "C"])
    assert (p.chosen, p.rejected) == ("A", "C")
    # same answer on repeat and regardless of candidate order
    assert k.select("sim", ["C", "B", "A"]) == p


def test_unknown_model_and_bad_mode() -> None:
    k = kin({"A": [1.0, 0.0], "B": [0.0, 1.0]})
    with pytest.raises(KarmaError, match="unknown model 'Q'"):
        k.select("score", ["A", "Q"])
    with pytest.raises(KarmaError, match="unknown mode"):
        k.select("best", ["A", "B"])


def test_paper_global_pairs(paper: Kinship) -> None:
    pairs = paper.global_pairs()
    assert (pairs["score"].chosen, pairs["score"].rejected) == ("gpt-4", "bard")
    assert {pairs["sim"].chosen, pairs["sim"].rejected} == {"llama-2-13b-chat", "llama-2-7b-chat"}
    # only starchat + pythia-12b answered: not kin -> dropped
    assert paper.select("sim", ["starchat", "pythia-12b"]).reason == "no_kin_above_tau"


def test_large_pool_matches_a_brute_force_reference() -> None:
    """600 models: every cosine, S_pref and the pool-wide pair of each mode against plain Python loops."""
    import math

    rng = np.random.default_rng(0)
    values = rng.random((600, 6))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        k = Kinship.from_values([f"m{i}" for i in range(600)], [f"b{j}" for j in range(6)], values, tau=0.995)
    lo, hi = values.min(axis=0), values.max(axis=0)
    norm = [[(v - a) / (b - a) for v, a, b in zip(row, lo, hi, strict=True)] for row in values.tolist()]

    def cos(i: int, j: int) -> float:
        dot = sum(x * y for x, y in zip(norm[i], norm[j], strict=True))
        return dot / (math.sqrt(sum(x * x for x in norm[i])) * math.sqrt(sum(y * y for y in norm[j])))

    for i, j in rng.integers(0, 600, size=(300, 2)).tolist():
        assert k.cosine[i, j] == pytest.approx(1.0 if i == j else cos(i, j), abs=1e-12)
    s_pref = [sum(r) / 6 for r in norm]
    assert np.allclose(k.s_pref, s_pref)
    rank = sorted(range(600), key=lambda i: (-s_pref[i], f"m{i}"))
    kin_pairs = [(a, b) for x, a in enumerate(rank) for b in rank[x + 1 :] if cos(a, b) >= 0.995]
    assert kin_pairs  # a high tau keeps the reference small but not empty
    best_sim = max(kin_pairs, key=lambda p: cos(*p))
    got = k.select("sim", k.models)
    assert isinstance(got, Pair) and {got.chosen, got.rejected} == {f"m{best_sim[0]}", f"m{best_sim[1]}"}
    first = next(a for a in rank if any(a in p for p in kin_pairs))
    partner = next(b for b in rank if b != first and ((first, b) in kin_pairs or (b, first) in kin_pairs))
    got = k.select("score", k.models)
    assert isinstance(got, Pair) and (got.chosen, got.rejected) == (f"m{first}", f"m{partner}")


@pytest.mark.parametrize("tau", [0.1, 0.999])
def test_pools_above_the_matrix_limit_select_like_the_full_matrix(monkeypatch, tau) -> None:
    """Without the n x n matrix (block-wise and per-candidate cosines) the picks are the same."""
    import karma_hf.kinship as kinship_mod

    rng = np.random.default_rng(3)
    values = np.round(rng.random((2500, 6)), 2)  # rounded: exact ties in S_pref and cosine occur
    names, benches = [f"m{i:04d}" for i in range(2500)], [f"b{j}" for j in range(6)]
    full = Kinship.from_values(names, benches, values, tau=tau)
    monkeypatch.setattr(kinship_mod, "FULL_MATRIX_LIMIT", 100)
    lazy = Kinship.from_values(names, benches, values, tau=tau)
    assert full.full_matrix and not lazy.full_matrix
    with pytest.raises(KarmaError, match="no full cosine matrix"):
        _ = lazy.cosine
    for mode in ("score", "sim", "score_sim"):
        a, b = full.select(mode, names), lazy.select(mode, names)
        assert (a.chosen, a.rejected) == (b.chosen, b.rejected), mode
        assert a.kinship == pytest.approx(b.kinship, abs=1e-12)
    for cand in rng.choice(2500, size=(200, 5)).tolist():
        picked = [names[i] for i in cand]
        for mode in ("score", "sim", "score_sim"):
            assert full.select(mode, picked) == lazy.select(mode, picked) or (
                full.select(mode, picked).kinship == pytest.approx(lazy.select(mode, picked).kinship, abs=1e-12)
            )
    i, j = rng.integers(0, 2500, size=(2, 50))
    assert np.allclose(full.pair_cosine(i, j), lazy.pair_cosine(i, j), atol=1e-12)
    d = lazy.to_dict()
    assert d["cosine"] is None and "left out" in d["cosine_note"]
