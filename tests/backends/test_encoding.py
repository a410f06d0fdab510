"""The relative-index sparse format: the paper's example, fillers, pointers, round trips."""

import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dlhwc.spec.encoding import column_entries, decode_sparse, encode_sparse, stream_stats


def reference_encode(mask, index, pes, run_bits):
    """A plain loop over PEs, columns and rows: the format as the docstring states it."""
    rmax = (1 << run_bits) - 1
    rows, cols = mask.shape
    streams, pointers, fillers = [], [], []
    for k in range(pes):
        v, z, p, nfill = [], [], [0], 0
        own = list(range(k, rows, pes))
        for j in range(cols):
            zeros = 0
            for r in own:
                if not mask[r, j]:
                    zeros += 1
                    continue
                while zeros > rmax:
                    v.append(0)
                    z.append(rmax)
                    nfill += 1
                    zeros -= rmax + 1
                v.append(int(index[r, j]))
                z.append(zeros)
                zeros = 0
            p.append(len(v))
        streams.append((v, z))
        pointers.append(p)
        fillers.append(nfill)
    return streams, pointers, fillers


def column(values):
    values = np.array(values, dtype=np.uint8)
    return (values != 0)[:, None], values[:, None]


def test_paper_example():
    mask, index = column([0, 0, 1, 2] + [0] * 18 + [3])
    enc = encode_sparse(mask, index, pes=1, run_bits=4)
    assert enc.v.tolist() == [1, 2, 0, 3]
    assert enc.z.tolist() == [2, 0, 15, 2]
    assert enc.filler.tolist() == [False, False, True, False]
    assert enc.pointers.tolist() == [[0, 4]]
    assert enc.pe_offsets.tolist() == [0, 4]
    assert enc.entries_per_pe.tolist() == [4]
    assert enc.fillers_per_pe.tolist() == [1]
    assert enc.nonzeros_per_pe.tolist() == [3]
    m, i = decode_sparse(enc, 23, 1)
    assert np.array_equal(m, mask) and np.array_equal(i, index)


@pytest.mark.parametrize(
    ("gap", "fillers", "last_z"),
    [(0, 0, 0), (14, 0, 14), (15, 0, 15), (16, 1, 0), (17, 1, 1), (31, 1, 15), (32, 2, 0),
     (33, 2, 1), (100, 6, 4)],
)  # fmt: skip
def test_fillers_at_column_start(gap, fillers, last_z):
    mask, index = column([0] * gap + [5])
    enc = encode_sparse(mask, index)
    assert enc.fillers == fillers
    assert enc.v.tolist() == [0] * fillers + [5]
    assert enc.z.tolist() == [15] * fillers + [last_z]


@pytest.mark.parametrize("run_bits", [1, 2, 3, 4, 5, 8])
def test_fillers_between_entries(run_bits):
    m = 1 << run_bits
    gap = 3 * m + 1
    mask, index = column([7] + [0] * gap + [9])
    enc = encode_sparse(mask, index, run_bits=run_bits)
    assert enc.v.tolist() == [7, 0, 0, 0, 9]
    assert enc.z.tolist() == [0, m - 1, m - 1, m - 1, 1]


def test_trailing_zeros_and_empty_columns_store_nothing():
    mask = np.zeros((40, 3), dtype=bool)
    mask[2, 1] = True
    enc = encode_sparse(mask, np.full((40, 3), 4, np.uint8))
    assert enc.v.tolist() == [4] and enc.z.tolist() == [2]
    assert enc.pointers.tolist() == [[0, 0, 1, 1]]


def test_interleaving_counts_zeros_of_own_rows():
    # 8 rows on 2 PEs: PE 0 holds rows 0, 2, 4, 6; PE 1 holds rows 1, 3, 5, 7.
    col = np.array([0, 1, 0, 0, 2, 0, 0, 3], dtype=np.uint8)
    mask, index = column(col)
    enc = encode_sparse(mask, index, pes=2)
    v0, z0, p0 = enc.pe_stream(0)
    v1, z1, p1 = enc.pe_stream(1)
    assert (v0.tolist(), z0.tolist(), p0.tolist()) == ([2], [2], [0, 1])  # row 4 = local 2
    assert (v1.tolist(), z1.tolist(), p1.tolist()) == ([1, 3], [0, 2], [0, 2])  # local 0, 3
    assert enc.rows_per_pe.tolist() == [4, 4]


def test_more_pes_than_rows():
    mask = np.ones((3, 2), dtype=bool)
    index = np.arange(6, dtype=np.uint8).reshape(3, 2)
    enc = encode_sparse(mask, index, pes=8)
    assert enc.entries_per_pe.tolist() == [2, 2, 2, 0, 0, 0, 0, 0]
    assert enc.rows_per_pe.tolist() == [1, 1, 1, 0, 0, 0, 0, 0]
    m, i = decode_sparse(enc)
    assert m.all() and np.array_equal(i, index)


def test_empty_matrix():
    enc = encode_sparse(np.zeros((5, 4), bool), np.zeros((5, 4), np.uint8), pes=3)
    assert enc.entries == 0 and enc.pointers.shape == (3, 5) and not enc.pointers.any()
    m, i = decode_sparse(enc, 5, 4)
    assert not m.any() and not i.any()


def test_index_zero_is_a_kept_weight_not_a_filler():
    # A kept weight with codebook index 0 after 15 zeros looks like a filler in the bits.
    mask = np.zeros((17, 1), dtype=bool)
    mask[15, 0] = True
    enc = encode_sparse(mask, np.zeros((17, 1), np.uint8))
    assert (enc.v.tolist(), enc.z.tolist(), enc.filler.tolist()) == ([0], [15], [False])
    m, _ = decode_sparse(enc)
    assert np.array_equal(m, mask)


@settings(max_examples=150, deadline=None)
@given(
    rows=st.integers(1, 70),
    cols=st.integers(1, 9),
    pes=st.integers(1, 64),
    run_bits=st.integers(2, 4),
    density=st.sampled_from([0.0, 0.01, 0.05, 0.2, 0.6, 1.0]),
    seed=st.integers(0, 2**32 - 1),
)
def test_round_trip_and_reference(rows, cols, pes, run_bits, density, seed):
    rng = np.random.default_rng(seed)
    mask = rng.random((rows, cols)) < density
    index = rng.integers(0, 16, (rows, cols), dtype=np.uint8)
    enc = encode_sparse(mask, index, pes, run_bits)

    m, i = decode_sparse(enc, rows, cols)
    assert np.array_equal(m, mask)
    assert np.array_equal(i[mask], index[mask]) and not i[~mask].any()

    streams, pointers, fillers = reference_encode(mask, index, pes, run_bits)
    assert enc.pointers.tolist() == pointers
    assert enc.fillers_per_pe.tolist() == fillers
    for k, (v, z) in enumerate(streams):
        ev, ez, ep = enc.pe_stream(k)
        assert ev.tolist() == v and ez.tolist() == z
        assert ep[-1] == len(v) == enc.entries_per_pe[k]
        # p[j+1] - p[j] is the number of entries of column j on PE k
        for j in range(cols):
            lo, hi = ep[j], ep[j + 1]
            assert hi - lo == len(ev[lo:hi])
            assert (~enc.filler[enc.pe_offsets[k] + lo : enc.pe_offsets[k] + hi]).sum() == (
                mask[k::pes, j].sum()
            )
    assert enc.nonzeros == mask.sum()
    assert np.array_equal(column_entries(mask, pes, run_bits), np.diff(enc.pointers, axis=1))
    assert enc.z.max(initial=0) <= (1 << run_bits) - 1
    assert np.all(enc.v[enc.filler] == 0) and np.all(enc.z[enc.filler] == (1 << run_bits) - 1)


def test_stream_stats_counts_symbols_over_a_stack():
    rng = np.random.default_rng(3)
    mask = rng.random((2, 50, 7)) < 0.1
    index = rng.integers(0, 8, (2, 50, 7), dtype=np.uint8)
    stats = stream_stats(mask, index, pes=3, run_bits=3, index_symbols=8)
    encs = [encode_sparse(mask[i], index[i], 3, 3) for i in range(2)]
    v = np.concatenate([e.v for e in encs])
    z = np.concatenate([e.z for e in encs])
    assert stats.index_counts.tolist() == np.bincount(v, minlength=8).tolist()
    assert stats.run_counts.tolist() == np.bincount(z, minlength=8).tolist()
    assert stats.entries == v.size and stats.nonzeros == mask.sum()
    assert stats.fillers == sum(e.fillers for e in encs)


@pytest.mark.parametrize("pes", [1, 3, 64])
def test_memory_layout_does_not_change_the_encoding(pes):
    # Weights stored [inputs, outputs] reach the encoder as transposed views; the
    # encoder scans those in memory order, which must give the same streams and counts.
    rng = np.random.default_rng(4)
    mask = rng.random((2, 70, 30)) < 0.15
    index = rng.integers(0, 16, (2, 70, 30), dtype=np.uint8)
    fortran_mask = np.ascontiguousarray(mask.transpose(0, 2, 1)).transpose(0, 2, 1)
    fortran_index = np.ascontiguousarray(index.transpose(0, 2, 1)).transpose(0, 2, 1)
    for m, i in [(fortran_mask, index), (mask, fortran_index), (fortran_mask, fortran_index)]:
        expected, got = encode_sparse(mask[0], index[0], pes), encode_sparse(m[0], i[0], pes)
        for field in ("v", "z", "filler", "pe_offsets", "pointers", "fillers_per_pe"):
            np.testing.assert_array_equal(getattr(got, field), getattr(expected, field))
        a, b = stream_stats(mask, index, pes), stream_stats(m, i, pes)
        assert (a.entries, a.fillers, a.nonzeros) == (b.entries, b.fillers, b.nonzeros)
        np.testing.assert_array_equal(a.index_counts, b.index_counts)
        np.testing.assert_array_equal(a.run_counts, b.run_counts)


def test_stream_stats_without_indices_counts_zeros():
    rng = np.random.default_rng(5)
    mask = rng.random((1, 40, 9)) < 0.2
    stats = stream_stats(mask, None, pes=2, run_bits=2, index_symbols=1)
    enc = encode_sparse(mask[0], np.zeros((40, 9), np.uint8), 2, 2)
    assert stats.index_counts.tolist() == [enc.entries]
    assert stats.run_counts.tolist() == np.bincount(enc.z, minlength=4).tolist()


def test_bad_inputs_and_corrupt_encodings():
    mask = np.eye(4, dtype=bool)
    index = np.ones((4, 4), np.uint8)
    with pytest.raises(ValueError):
        encode_sparse(mask, index[:3])
    with pytest.raises(ValueError):
        encode_sparse(mask, index, pes=0)
    with pytest.raises(ValueError):
        encode_sparse(mask, index, run_bits=9)
    enc = encode_sparse(mask, index)
    with pytest.raises(ValueError):
        decode_sparse(enc, 5, 4)
    enc.z[-1] = 9  # row 3 + 9 lies beyond the column
    with pytest.raises(ValueError, match="beyond"):
        decode_sparse(enc)


@pytest.mark.slow
def test_benchmark_vgg_fc6_size():
    """4096 x 25088 at 4% density on 64 PEs: prints the time (target: well under 3 s)."""
    rng = np.random.default_rng(0)
    mask = rng.random((4096, 25088), dtype=np.float32) < 0.04
    index = rng.integers(0, 16, mask.shape, dtype=np.uint8)
    best = float("inf")
    for _ in range(2):
        start = time.perf_counter()
        enc = encode_sparse(mask, index, pes=64)
        best = min(best, time.perf_counter() - start)
    start = time.perf_counter()
    m, i = decode_sparse(enc)
    decode_time = time.perf_counter() - start
    print(
        f"\nencode_sparse 4096x25088, 4% dense, 64 PEs: {best:.2f} s "
        f"({enc.entries:,} entries, {enc.fillers:,} fillers); decode {decode_time:.2f} s"
    )
    assert np.array_equal(m, mask) and np.array_equal(i[mask], index[mask])
