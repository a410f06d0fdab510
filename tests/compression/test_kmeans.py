"""1-D k-means: agreement with scikit-learn's Lloyd, initializations, edge cases, properties."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.cluster import KMeans

from dlhwc.compiler.compression.kmeans import DEFAULT_TOL, INIT_METHODS, init_centroids, kmeans_1d


def sample(dist: str, n: int, seed: int) -> np.ndarray:
    """float32 data shaped like layer weights (scale 0.05)."""
    rng = np.random.default_rng(seed)
    if dist == "normal":
        x = rng.normal(0.0, 0.05, n)
    elif dist == "laplace":
        x = rng.laplace(0.0, 0.03, n)
    else:  # bimodal: what survives magnitude pruning looks like this
        x = rng.normal(0.08, 0.02, n) * rng.choice([-1.0, 1.0], n)
    return x.astype(np.float32)


def sklearn_lloyd(x: np.ndarray, start: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    # float64 input so that scikit-learn computes in float64, as kmeans_1d does.
    km = KMeans(
        n_clusters=start.size,
        init=start.reshape(-1, 1),
        n_init=1,
        algorithm="lloyd",
        tol=DEFAULT_TOL,
        max_iter=300,
    ).fit(x.astype(np.float64).reshape(-1, 1))
    return km.cluster_centers_[:, 0], km.labels_, km.n_iter_


CASES = [
    ("normal", 1_000, 2, "linear"),
    ("normal", 10_000, 32, "linear"),
    ("normal", 100_000, 16, "linear"),
    ("laplace", 1_000, 4, "density"),
    ("laplace", 10_000, 32, "density"),
    ("laplace", 100_000, 4, "linear"),
    ("bimodal", 1_000, 16, "random"),
    ("bimodal", 10_000, 4, "random"),
    ("bimodal", 100_000, 32, "density"),
]


@pytest.mark.parametrize(("dist", "n", "k", "method"), CASES)
def test_same_result_as_sklearn_lloyd(dist, n, k, method):
    x = sample(dist, n, seed=n + k)
    start = init_centroids(x, k, method, seed=1)
    assert start.size == k
    centroids, labels, n_iter = kmeans_1d(x, start, return_n_iter=True)
    # The comparison only holds while no cluster empties (scikit-learn relocates those).
    assert np.all(np.bincount(labels, minlength=k) > 0)
    ref_centroids, ref_labels, ref_n_iter = sklearn_lloyd(x, start)
    assert n_iter == ref_n_iter

    scale = float(np.abs(x).max())
    np.testing.assert_allclose(centroids, ref_centroids, rtol=1e-5, atol=1e-9 * scale)
    differ = np.flatnonzero(labels != ref_labels)
    # Labels may differ only for a value (numerically) equidistant from both centroids.
    xd = x[differ].astype(np.float64)
    gap = np.abs(
        np.abs(xd - centroids[labels[differ]]) - np.abs(xd - centroids[ref_labels[differ]])
    )
    assert np.all(gap <= 1e-9 * scale), differ[:10]


def test_deterministic_and_independent_of_input_order():
    x = sample("laplace", 20_000, seed=3)
    start = init_centroids(x, 16, "linear")
    c1, l1 = kmeans_1d(x, start)
    c2, l2 = kmeans_1d(x, start)
    np.testing.assert_array_equal(c1, c2)
    np.testing.assert_array_equal(l1, l2)
    perm = np.random.default_rng(0).permutation(x.size)
    c3, l3 = kmeans_1d(x[perm], start[::-1])  # shuffled values, unsorted initial centroids
    np.testing.assert_allclose(c3, c1, rtol=1e-12)
    np.testing.assert_array_equal(l3, l1[perm])


def test_centroids_sorted_and_means_of_their_clusters():
    x = sample("bimodal", 5_000, seed=4)
    centroids, labels = kmeans_1d(x, init_centroids(x, 8, "density"), tol=0.0)
    assert np.all(np.diff(centroids) > 0)
    for j in range(centroids.size):
        np.testing.assert_allclose(centroids[j], x[labels == j].astype(np.float64).mean())


# -- initializations -----------------------------------------------------------------------


def test_linear_init_spans_the_range():
    x = np.array([3.0, -1.0, 0.5, 2.0])
    np.testing.assert_array_equal(init_centroids(x, 5, "linear"), np.linspace(-1.0, 3.0, 5))


def test_density_init_is_quantiles():
    x = sample("laplace", 1_001, seed=5)
    expected = np.quantile(x.astype(np.float64), np.linspace(0, 1, 8))
    got = init_centroids(x, 8, "density")
    np.testing.assert_array_equal(got, expected)
    assert got[0] == x.min() and got[-1] == x.max()


def test_random_init_draws_distinct_data_values_from_the_seed():
    x = np.repeat(sample("normal", 100, seed=6), 3)  # every value three times
    a = init_centroids(x, 16, "random", seed=7)
    assert a.size == 16 and np.all(np.diff(a) > 0) and np.all(np.isin(a, x))
    np.testing.assert_array_equal(a, init_centroids(x, 16, "random", seed=7))
    assert not np.array_equal(a, init_centroids(x, 16, "random", seed=8))


@pytest.mark.parametrize("method", INIT_METHODS)
def test_init_with_few_distinct_values(method):
    x = np.array([2.0, 2.0, 5.0, 5.0, 5.0])
    start = init_centroids(x, 16, method)
    assert start.size <= 16 and np.all(np.diff(start) > 0)
    centroids, labels = kmeans_1d(x, start)
    # Every distinct value ends in a cluster of its own.
    np.testing.assert_array_equal(centroids[labels], x)


@pytest.mark.parametrize("method", INIT_METHODS)
def test_all_equal_values(method):
    x = np.full(50, -0.25, dtype=np.float32)
    start = init_centroids(x, 4, method)
    np.testing.assert_array_equal(start, [-0.25])
    centroids, labels = kmeans_1d(x, start)
    np.testing.assert_array_equal(centroids, [-0.25])
    assert np.all(labels == 0)


def test_init_errors():
    with pytest.raises(ValueError, match="unknown init"):
        init_centroids(np.ones(3), 2, "kmeans++")
    with pytest.raises(ValueError, match="at least 1"):
        init_centroids(np.ones(3), 0)
    with pytest.raises(ValueError, match="no values"):
        init_centroids(np.zeros(0), 2)
    with pytest.raises(ValueError, match="finite"):
        init_centroids(np.array([1.0, np.nan]), 2)


# -- edge cases of the iteration -------------------------------------------------------------


def test_k1_gives_the_mean():
    x = sample("laplace", 999, seed=9)
    centroids, labels = kmeans_1d(x, init_centroids(x, 1, "linear"))
    np.testing.assert_allclose(centroids, [x.astype(np.float64).mean()])
    assert np.all(labels == 0)


def test_fewer_values_than_clusters():
    x = np.array([0.5, -0.1, 0.3])
    centroids, labels = kmeans_1d(x, np.linspace(-1, 1, 16))
    assert centroids.size == 16
    np.testing.assert_array_equal(centroids[labels], x)


def test_tie_at_a_midpoint_goes_to_the_lower_cluster():
    x = np.array([0.0, 1.0, 2.0])
    _, labels = kmeans_1d(x, [0.0, 2.0], max_iter=0)
    np.testing.assert_array_equal(labels, [0, 0, 1])
    centroids, labels = kmeans_1d(x, [0.0, 2.0])
    np.testing.assert_array_equal(centroids, [0.5, 2.0])
    np.testing.assert_array_equal(labels, [0, 0, 1])


def test_empty_cluster_keeps_its_centroid():
    x = np.array([0.0, 0.1, 9.9, 10.0])
    centroids, labels = kmeans_1d(x, [0.0, 5.0, 10.0])
    np.testing.assert_allclose(centroids, [0.05, 5.0, 9.95])
    np.testing.assert_array_equal(labels, [0, 0, 2, 2])


def test_duplicate_initial_centroids_split_apart():
    # The lower copy takes the values up to it (ties go down), the upper one those above.
    x = np.array([0.0, 1.0, 2.0, 3.0])
    centroids, labels = kmeans_1d(x, [1.0, 1.0, 3.0])
    np.testing.assert_array_equal(centroids, [0.5, 2.0, 3.0])
    np.testing.assert_array_equal(labels, [0, 0, 1, 2])


def test_tolerance_stops_early_but_labels_match_the_centroids():
    x = sample("normal", 10_000, seed=10)
    start = init_centroids(x, 16, "linear")
    early, labels, n_iter = kmeans_1d(x, start, tol=1e6, return_n_iter=True)
    assert n_iter == 1  # stopped after the first update
    converged, _, n_converged = kmeans_1d(x, start, tol=0.0, return_n_iter=True)
    assert not np.allclose(early, converged)
    capped, _, n_capped = kmeans_1d(x, start, tol=0.0, max_iter=3, return_n_iter=True)
    assert n_converged > 3 and n_capped == 3
    mids = 0.5 * (early[:-1] + early[1:])
    np.testing.assert_array_equal(labels, np.searchsorted(mids, x.astype(np.float64), "left"))


def test_no_values():
    centroids, labels = kmeans_1d(np.zeros(0), [2.0, 1.0])
    np.testing.assert_array_equal(centroids, [1.0, 2.0])
    assert labels.shape == (0,)


def test_kmeans_errors():
    with pytest.raises(ValueError, match="at least one"):
        kmeans_1d(np.ones(3), [])
    with pytest.raises(ValueError, match="finite"):
        kmeans_1d(np.array([1.0, np.inf]), [1.0])
    with pytest.raises(ValueError, match="finite"):
        kmeans_1d(np.ones(3), [np.nan])


# -- properties --------------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(
    x=arrays(
        np.float32,
        st.integers(1, 200),
        elements=st.floats(-1e3, 1e3, allow_nan=False, width=32),
    ),
    k=st.integers(1, 20),
    method=st.sampled_from(INIT_METHODS),
    seed=st.integers(0, 2**16),
)
def test_labels_are_the_nearest_centroid(x, k, method, seed):
    centroids, labels = kmeans_1d(x, init_centroids(x, k, method, seed))
    assert np.all(np.diff(centroids) >= 0)
    assert labels.shape == x.shape and labels.min() >= 0 and labels.max() < centroids.size
    xd = x.astype(np.float64)[:, None]
    dist = np.abs(xd - centroids[None, :])
    own = dist[np.arange(x.size), labels]
    # Up to the rounding of the midpoints between centroids.
    assert np.all(own <= dist.min(axis=1) + 1e-12 * max(1.0, float(np.abs(xd).max())))
