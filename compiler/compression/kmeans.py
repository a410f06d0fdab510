"""One-dimensional k-means (Lloyd's algorithm) for weight sharing.

Deep Compression (Han, Mao & Dally, ICLR 2016, section 3) clusters the surviving weights
of a layer with k-means and stores a k-entry codebook plus a log2(k)-bit index per
weight. The data is one-dimensional, which makes Lloyd's algorithm cheap:

- the values are sorted once (O(n log n));
- with the centroids sorted, every cluster is a contiguous run of the sorted values,
  bounded by the midpoints between neighbouring centroids, so the assignment step is
  one `np.searchsorted` of the k-1 midpoints (O(k log n));
- the update step takes each run's sum from float64 prefix sums of the sorted values,
  kept per block of 4096 values (O(k) block lookups and partial blocks; memory stays at
  the sorted values themselves);
- the labels are computed once, at the end, by a `np.searchsorted` of every value into
  the final midpoints (O(n log k)).

After the sort an iteration costs O(k log n) instead of the O(n k) of a generic k-means,
and nothing loops over the weights in Python. The sort does not keep the permutation:
`np.sort` (SIMD-accelerated in numpy 2) is several times faster than `np.argsort`, and
the final search gives the same labels as the runs would (a value on a midpoint goes to
the lower cluster both ways) without the gather and scatter a permutation costs.

Semantics, chosen to agree with scikit-learn's `KMeans(algorithm="lloyd", n_init=1,
init=<the same centroids>)` whenever no cluster empties:

- **Stopping.** Iterations stop when an assignment step changes no label (strict
  convergence), or when the sum over the centroids of their squared shift in an update
  step is at most ``tol * np.var(values)`` (scikit-learn's `tol`, which is relative to
  the data's variance), or after `max_iter` iterations. Unless the labels converged
  strictly, a final assignment step makes the labels those of the returned centroids.
- **Ties.** A value exactly on the midpoint of two centroids goes to the lower one.
- **Empty clusters** keep their previous centroid. (scikit-learn instead relocates an
  empty cluster onto the points farthest from their centroids, so the two differ once a
  cluster empties.) In one dimension Lloyd's algorithm keeps distinct centroids in
  order, so the returned centroids stay sorted.
- **Determinism.** No randomness: the same input gives the same output. Only the
  `random` initialization draws numbers, from ``np.random.default_rng(seed)``.

Arithmetic is float64 whatever the input dtype (float32 input is sorted as float32,
which orders it the same and is faster, then widened exactly).
"""

from __future__ import annotations

import numpy as np

from dlhwc.spec import progress

INIT_METHODS = ("linear", "density", "random")
"""The initializations `init_centroids` knows (Deep Compression section 3.2)."""

DEFAULT_TOL = 1e-4
"""The default relative tolerance, scikit-learn's: the shift bound is tol * variance."""


def init_centroids(values: np.ndarray, k: int, method: str = "linear", seed: int = 0) -> np.ndarray:
    """Initial centroids for `kmeans_1d`: at most ``k`` distinct values, sorted ascending.

    - ``linear``: ``np.linspace(min, max, k)``, evenly spaced over the range of the
      values. Deep Compression found it the best of the three for accuracy, because it
      keeps centroids for the few large weights.
    - ``density``: ``np.quantile(values, np.linspace(0, 1, k))`` with numpy's default
      ("linear", Hyndman-Fan type 7) interpolation: evenly spaced over the empirical
      CDF, the first centroid the minimum and the last the maximum.
    - ``random`` (Forgy): ``k`` distinct values of the data, drawn without replacement
      from the distinct values by ``np.random.default_rng(seed).choice``.

    Fewer than ``k`` centroids come back when the data has fewer than ``k`` distinct
    values (all-equal values give one centroid) or when quantiles coincide: duplicates
    are dropped, so that no two clusters start as one. ``k = 1`` gives
    the minimum for `linear` and `density` (one Lloyd step moves it to the mean).

    Raises ValueError for an unknown method, ``k < 1``, no values, or non-finite values.
    """
    if method not in INIT_METHODS:
        raise ValueError(f"unknown init method '{method}' (known: {', '.join(INIT_METHODS)})")
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    x = _as_data(values)
    if x.size == 0:
        raise ValueError("cannot initialize centroids from no values")
    if method == "linear":
        centroids = np.linspace(x.min(), x.max(), k)
    elif method == "density":
        centroids = np.quantile(x, np.linspace(0.0, 1.0, k))
    else:
        distinct = np.unique(x)
        rng = np.random.default_rng(seed)
        centroids = rng.choice(distinct, size=min(k, distinct.size), replace=False)
    return np.unique(centroids)  # sorted, without duplicates


def kmeans_1d(
    values: np.ndarray,
    init_centroids: np.ndarray,
    max_iter: int = 300,
    tol: float = DEFAULT_TOL,
    return_n_iter: bool = False,
) -> tuple[np.ndarray, np.ndarray] | tuple[np.ndarray, np.ndarray, int]:
    """Cluster ``values`` with Lloyd's algorithm from ``init_centroids``.

    Returns ``(centroids, labels)``: the float64 centroids sorted ascending (the initial
    ones are sorted first, so their order does not matter) and, for every value in its
    original order, the index (np.intp) of its centroid. See the module docstring for
    the stopping rule (``tol`` is relative to the variance of the values), ties and empty
    clusters. With no values the sorted initial centroids come back with no labels.

    With ``return_n_iter`` the number of iterations comes third, counted as
    scikit-learn's `n_iter_`: the update steps run, including, on strict convergence,
    the one that found the labels unchanged (here it is skipped, being a no-op).

    Raises ValueError for no initial centroids or non-finite values or centroids.
    """
    x = _as_data(values)
    centroids, n_iter = kmeans_1d_sorted(np.sort(x), init_centroids, max_iter, tol)
    labels = assign_labels(x, centroids)
    return (centroids, labels, n_iter) if return_n_iter else (centroids, labels)


_BLOCK = 4096
"""Values per block of the blocked prefix sums (`_Prefix`)."""


def kmeans_1d_sorted(
    xs: np.ndarray, init_centroids: np.ndarray, max_iter: int = 300, tol: float = DEFAULT_TOL
) -> tuple[np.ndarray, int]:
    """`kmeans_1d` on values already sorted ascending (float32 or float64, finite):
    ``(centroids, n_iter)``, without labels (`assign_labels` gives them).

    Memory stays at the sorted values: the prefix sums are kept per block of _BLOCK
    values (float64), a run's sum is two block prefixes and two partial blocks, so a
    100M-weight layer needs no 800 MB prefix array."""
    centroids = np.sort(np.asarray(init_centroids, dtype=np.float64).reshape(-1))
    if centroids.size == 0:
        raise ValueError("kmeans_1d needs at least one initial centroid")
    if not np.all(np.isfinite(centroids)):
        raise ValueError("initial centroids must be finite")
    if xs.size == 0:
        return centroids, 0
    prefix = _Prefix(xs)
    shift_bound = tol * prefix.variance()

    bounds = _assign(xs, centroids)
    n_iter = max_iter
    for i in progress.track(range(max_iter), f"k-means of {xs.size:,} weights", unit="iterations"):
        counts = np.diff(bounds)
        sums = prefix.upto(bounds[1:]) - prefix.upto(bounds[:-1])
        # Empty clusters keep their centroid (np.divide only writes where count > 0).
        new = np.divide(sums, counts, out=centroids.copy(), where=counts > 0)
        # A run's mean lies within the run; clipping undoes the prefix sums' rounding so
        # that the centroids provably stay sorted.
        full = counts > 0
        lo = xs[bounds[:-1][full]].astype(np.float64)
        hi = xs[bounds[1:][full] - 1].astype(np.float64)
        new[full] = np.clip(new[full], lo, hi)
        shift = float(np.sum((new - centroids) ** 2))
        centroids = new
        new_bounds = _assign(xs, centroids)
        if np.array_equal(new_bounds, bounds):
            # The labels did not change, so a further update would give the same centroids.
            n_iter = min(i + 2, max_iter)
            break
        bounds = new_bounds
        if shift <= shift_bound:
            n_iter = i + 1
            break
    return centroids, n_iter


def assign_labels(
    values: np.ndarray, centroids: np.ndarray, dtype=np.intp, chunk: int = 1 << 22
) -> np.ndarray:
    """The index of each value's centroid (centroids sorted ascending), in ``dtype``.

    side="left" counts the midpoints strictly below a value, so a value on a midpoint
    gets the lower cluster, as in `_assign`: these are the runs' labels. Computed a
    chunk at a time, so that only the result is as long as the values."""
    x = np.asarray(values).reshape(-1)
    mids = _midpoints(np.asarray(centroids, dtype=np.float64))
    labels = np.empty(x.size, dtype=dtype)
    for start in range(0, x.size, chunk):
        part = x[start : start + chunk]
        labels[start : start + chunk] = np.searchsorted(mids, part, side="left")
    return labels


class _Prefix:
    """Sums of the first p sorted values, from float64 prefix sums per block of _BLOCK."""

    def __init__(self, xs: np.ndarray):
        self.xs = xs
        sums = np.empty(-(-xs.size // _BLOCK), dtype=np.float64)
        chunk = _BLOCK * 1024  # widened to float64 a chunk at a time
        for start in range(0, xs.size, chunk):
            part = xs[start : start + chunk].astype(np.float64)
            first = start // _BLOCK
            starts = np.arange(0, part.size, _BLOCK)
            sums[first : first + starts.size] = np.add.reduceat(part, starts)
        self.blocks = np.concatenate(([0.0], np.cumsum(sums)))

    def upto(self, positions: np.ndarray) -> np.ndarray:
        """sum(xs[:p]) for every p of ``positions``."""
        out = np.empty(len(positions), dtype=np.float64)
        for i, p in enumerate(np.asarray(positions).tolist()):
            block = p // _BLOCK
            out[i] = self.blocks[block] + float(
                np.sum(self.xs[block * _BLOCK : p], dtype=np.float64)
            )
        return out

    def variance(self) -> float:
        """The population variance of the values (as np.var), in float64."""
        n = self.xs.size
        mean = self.blocks[-1] / n
        total = 0.0
        for start in range(0, n, 1 << 22):
            part = self.xs[start : start + (1 << 22)].astype(np.float64) - mean
            total += float(np.dot(part, part))
        return total / n


def _assign(xs: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Run boundaries: cluster j is ``xs[bounds[j]:bounds[j + 1]]`` (k + 1 entries).

    ``side="right"`` counts the values <= each midpoint, so a value on a midpoint joins
    the lower cluster.
    """
    mids = _midpoints(centroids)
    if xs.dtype == np.float32:
        # Searching float64 keys in float32 values would convert all the values; the
        # largest float32 <= m has exactly the same float32 values at or below it.
        down = mids.astype(np.float32)
        over = down.astype(np.float64) > mids
        down[over] = np.nextafter(down[over], np.float32(-np.inf))
        mids = down
    bounds = np.empty(centroids.size + 1, dtype=np.intp)
    bounds[0] = 0
    bounds[-1] = xs.size
    bounds[1:-1] = np.searchsorted(xs, mids, side="right")
    return bounds


def _midpoints(centroids: np.ndarray) -> np.ndarray:
    return 0.5 * (centroids[:-1] + centroids[1:])


def _as_data(values: np.ndarray) -> np.ndarray:
    """The values as a flat float32 (kept: exact in float64, and faster to sort) or float64
    array."""
    x = np.asarray(values).reshape(-1)
    if x.dtype != np.float32:
        x = x.astype(np.float64)
    if not np.all(np.isfinite(x)):
        raise ValueError("k-means values must be finite")
    return x
