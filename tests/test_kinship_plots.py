"""Figure 4 (PCA) and Figure 7 (dendrograms) of the paper: orientation rule and clusters by hand."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from karma_hf.analysis.kinship_plots import (
    clusters_at,
    dendrogram_clusters,
    kinship_distance,
    linkage_matrix,
    pca_2d,
    quadrants,
)
from karma_hf.errors import KarmaError
from karma_hf.kinship import Kinship
from karma_hf.scores import load_scores

# Parameters (billions) and base family of the 16 scored UltraFeedback models (commercial: undisclosed).
SIZE_B = {
    "llama-2-7b-chat": 7,
    "llama-2-13b-chat": 13,
    "llama-2-70b-chat": 70,
    "ultralm-13b": 13,
    "wizardlm-7b": 7,
    "wizardlm-13b": 13,
    "wizardlm-70b": 70,
    "vicuna-33b": 33,
    "alpaca-7b": 7,
    "falcon-40b-instruct": 40,
    "mpt-30b-chat": 30,
    "starchat": 15.5,
    "pythia-12b": 12,
}
LLAMA_BASED = {
    "llama-2-7b-chat",
    "llama-2-13b-chat",
    "llama-2-70b-chat",
    "ultralm-13b",
    "wizardlm-7b",
    "wizardlm-13b",
    "wizardlm-70b",
    "vicuna-33b",
    "alpaca-7b",
}
COMMERCIAL = {"gpt-4", "gpt-3.5-turbo", "bard"}


@pytest.fixture(scope="module")
def paper() -> Kinship:
    return Kinship.from_table(load_scores("ultrafeedback-paper"))


# ----------------------------------------------------------------------------- Figure 4
def test_pca_quadrants_match_figure_4(paper):
    """§4.1: "smaller-scale models tend to cluster in the first quadrant, models with closer kinship
    relationships in the second quadrant, while Llama-based models and models exceeding 10B parameters
    are predominantly distributed in the third and fourth quadrants"."""
    q = quadrants(paper)
    by_quadrant = {i: {m for m, v in q.items() if v == i} for i in (1, 2, 3, 4)}
    assert by_quadrant[1] == {"alpaca-7b", "wizardlm-7b", "ultralm-13b", "starchat", "pythia-12b"}
    assert by_quadrant[2] == COMMERCIAL  # the tightly kin commercial models (cosine >= 0.98 among them)
    lower = by_quadrant[3] | by_quadrant[4]
    assert lower == {
        "llama-2-7b-chat",
        "llama-2-13b-chat",
        "llama-2-70b-chat",
        "wizardlm-13b",
        "wizardlm-70b",
        "vicuna-33b",
        "falcon-40b-instruct",
        "mpt-30b-chat",
    }
    assert all(m in LLAMA_BASED or SIZE_B[m] > 10 for m in lower)
    # the smallest models lie in quadrant 1 ...
    assert {"alpaca-7b", "wizardlm-7b"} <= by_quadrant[1]
    # ... and most Llama-based / >10B open models in quadrants 3-4
    open_big = {m for m in SIZE_B if m in LLAMA_BASED or SIZE_B[m] > 10}
    assert len(open_big & lower) > len(open_big) / 2


def test_pca_orientation_rule(paper):
    coords, ratio = pca_2d(paper)
    # PC1: loadings sum negative, so PC1 decreases with S_pref (GPT-4 furthest left)
    assert np.corrcoef(coords[:, 0], paper.s_pref)[0, 1] < -0.9
    assert paper.models[int(np.argmin(coords[:, 0]))] == "gpt-4"
    assert 0.7 < ratio[0] < 0.8 and ratio[1] > 0.1
    # PC2: largest loading positive (IFEval on the paper's scores): bard, the best IFEval model, is highest
    assert paper.models[int(np.argmax(coords[:, 1]))] == "bard"


def test_pca_orientation_does_not_depend_on_model_order(paper, tmp_path):
    table = load_scores("ultrafeedback-paper")
    path = tmp_path / "reversed.csv"
    lines = [",".join(["model", *table.benchmarks])]
    rows = list(zip(table.models, table.values.tolist(), strict=True))
    lines += [",".join([m, *map(repr, v)]) for m, v in reversed(rows)]
    path.write_text("\n".join(lines) + "\n")
    shuffled = Kinship.from_table(load_scores(str(path)))
    assert list(shuffled.models) == list(reversed(paper.models))
    ours, theirs = pca_2d(paper)[0], pca_2d(shuffled)[0]
    for i, m in enumerate(paper.models):
        assert np.allclose(ours[i], theirs[list(shuffled.models).index(m)])


# ----------------------------------------------------------------------------- Figure 7
@pytest.fixture(scope="module")
def five(tmp_path_factory) -> Kinship:
    """Five models whose min-max normalised vectors are (b1, b2): A (1, 0), B (1, .2), C (0, 1), D (.2, 1),
    E (1, .8)."""
    path = tmp_path_factory.mktemp("five") / "five.csv"
    path.write_text("model,b1,b2\nA,100,0\nB,100,20\nC,0,100\nD,20,100\nE,100,80\n")
    return Kinship.from_table(load_scores(str(path)))


def test_five_model_distances_by_hand(five):
    cos = kinship_distance(five)
    # 1 - cos: A-B = 1 - 1/sqrt(1.04); A-E = 1 - 1/sqrt(1.64); B-E = 1 - 1.16/sqrt(1.04 * 1.64)
    assert cos[0, 1] == pytest.approx(1 - 1 / np.sqrt(1.04))
    assert cos[0, 4] == pytest.approx(1 - 1 / np.sqrt(1.64))
    assert cos[1, 4] == pytest.approx(1 - 1.16 / np.sqrt(1.04 * 1.64))
    assert cos[0, 2] == pytest.approx(1.0)
    euc = kinship_distance(five, distance="euclidean")
    assert euc[0, 1] == pytest.approx(0.2) and euc[1, 4] == pytest.approx(0.6) and euc[0, 2] == pytest.approx(2**0.5)
    one = kinship_distance(five, [1], distance="euclidean")  # a single benchmark: |n_i - n_j| either way
    assert np.allclose(one, kinship_distance(five, [1])) and one[0, 4] == pytest.approx(0.8)


def test_five_model_clusters_by_hand(five):
    # cosine + average: A-B and C-D merge at 0.0194, then E joins A-B at mean(0.2191, 0.1118) = 0.1655;
    # the last merge is the mean of the six cross distances, 0.6388 > 0.4
    z = linkage_matrix(kinship_distance(five), "average")
    assert np.allclose(z[:, 2], [0.019419, 0.019419, 0.165457, 0.638791], atol=1e-6)
    assert clusters_at(five) == [["A", "B", "E"], ["C", "D"]]
    # complete: E joins A-B at max(0.2191, 0.1118) = 0.2191; at a 0.2 cut that separates E, average does not
    assert clusters_at(five, linkage="complete") == [["A", "B", "E"], ["C", "D"]]
    assert clusters_at(five, cut=0.2, linkage="complete") == [["A", "B"], ["C", "D"], ["E"]]
    assert clusters_at(five, cut=0.2, linkage="average") == [["A", "B", "E"], ["C", "D"]]
    # Euclidean + average: A-B, C-D at 0.2; E joins A-B at mean(0.8, 0.6) = 0.7 > 0.4
    assert clusters_at(five, distance="euclidean") == [["A", "B"], ["C", "D"], ["E"]]
    z = linkage_matrix(kinship_distance(five, distance="euclidean"), "average")
    assert np.allclose(z[2:, 2], [0.7, (2**0.5 + 2 * 1.64**0.5 + 1.28**0.5 + 1.04**0.5 + 0.68**0.5) / 6])
    # Ward: E joins A-B at sqrt(2 * 2 * 1 / 3) * |(1, .1) - (1, .8)| = 0.8083
    z = linkage_matrix(kinship_distance(five, distance="euclidean"), "ward")
    assert z[2, 2] == pytest.approx((4 / 3) ** 0.5 * 0.7)
    assert clusters_at(five, distance="euclidean", linkage="ward") == [["A", "B"], ["C", "D"], ["E"]]
    labels = dendrogram_clusters(kinship_distance(five), 0.4)
    assert labels[0] == labels[1] == labels[4] != labels[2] == labels[3]


def test_bad_choices(five):
    with pytest.raises(KarmaError, match="--distance must be one of cosine, euclidean"):
        kinship_distance(five, distance="manhattan")
    with pytest.raises(KarmaError, match="--linkage must be one of average, complete, ward"):
        linkage_matrix(kinship_distance(five), "single")


def test_figure7_doc_is_current():
    """docs/figure7.md is the output of scripts/figure7_table.py (re-run it after changing the clustering)."""
    import importlib.util

    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("figure7_table", root / "scripts" / "figure7_table.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.render() == (root / "docs" / "figure7.md").read_text(encoding="utf-8")
