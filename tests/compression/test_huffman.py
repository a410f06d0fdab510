"""Huffman coding: optimal lengths, canonical codes, round trips, the entropy bound."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dlhwc.compiler.compression.huffman import (
    canonical_codes,
    code_lengths,
    decode,
    encode,
    huffman_bits,
)


def reference_cost(counts):
    """Total bits of an optimal prefix code, by the textbook O(n^2) merging: the cost of
    a Huffman tree is the sum of the weights of its merged (internal) nodes."""
    weights = sorted(c for c in counts if c > 0)
    if len(weights) == 1:
        return weights[0]
    cost = 0
    while len(weights) > 1:
        a, b = weights[0], weights[1]
        weights = sorted([*weights[2:], a + b])
        cost += a + b
    return cost


counts_strategy = st.lists(st.integers(0, 10_000), min_size=1, max_size=40).filter(any)


@settings(max_examples=200, deadline=None)
@given(counts_strategy)
def test_lengths_are_optimal(counts):
    lengths = code_lengths(counts)
    assert huffman_bits(counts, lengths) == reference_cost(counts)
    counts = np.array(counts)
    assert np.all((lengths == 0) == (counts == 0))
    if np.count_nonzero(counts) > 1:
        # A Huffman code is complete: Kraft's sum is exactly 1.
        assert sum(2.0 ** -int(n) for n in lengths if n) == 1.0


@settings(max_examples=100, deadline=None)
@given(counts_strategy)
def test_entropy_bound(counts):
    counts = np.array(counts, dtype=np.float64)
    lengths = code_lengths(counts)
    p = counts[counts > 0] / counts.sum()
    entropy = float(-(p * np.log2(p)).sum())
    average = huffman_bits(counts, lengths) / counts.sum()
    assert entropy - 1e-9 <= average
    if p.size > 1:
        assert average < entropy + 1
    else:  # one symbol still costs one bit
        assert average == 1.0


@settings(max_examples=100, deadline=None)
@given(
    st.integers(1, 256),
    st.integers(0, 3000),
    st.floats(0.05, 5.0),
    st.integers(0, 2**32 - 1),
)
def test_round_trip(alphabet, n, concentration, seed):
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.full(alphabet, concentration))
    symbols = rng.choice(alphabet, size=n, p=p)
    counts = np.bincount(symbols, minlength=alphabet)
    lengths = code_lengths(counts if counts.any() else np.ones(alphabet))
    data, nbits = encode(symbols, lengths)
    assert nbits == huffman_bits(counts, lengths)
    assert len(data) == (nbits + 7) // 8
    assert np.array_equal(decode(data, nbits, lengths, n), symbols)


def test_long_codes_round_trip():
    # Fibonacci counts give the deepest tree: codes far longer than the decoder's table.
    fib = [1, 1]
    while len(fib) < 30:
        fib.append(fib[-1] + fib[-2])
    lengths = code_lengths(fib)
    assert lengths.max() == 29
    rng = np.random.default_rng(0)
    symbols = rng.permutation(np.repeat(np.arange(30), 20))
    data, nbits = encode(symbols, lengths)
    assert np.array_equal(decode(data, nbits, lengths, symbols.size), symbols)


def test_single_symbol_and_empty():
    assert code_lengths([0, 7, 0]).tolist() == [0, 1, 0]
    assert code_lengths([0, 0]).tolist() == [0, 0]
    data, nbits = encode([1] * 10, [0, 1, 0])
    assert nbits == 10 and data == b"\x00\x00"
    assert decode(data, nbits, [0, 1, 0], 10).tolist() == [1] * 10
    assert encode([], [1, 1]) == (b"", 0)


def test_canonical_codes_deflate_example():
    # RFC 1951, 3.2.2: lengths (2, 1, 3, 3) give codes 10, 0, 110, 111.
    assert canonical_codes([2, 1, 3, 3]) == [0b10, 0b0, 0b110, 0b111]
    data, nbits = encode([0, 1, 2, 3], [2, 1, 3, 3])
    assert nbits == 9 and np.unpackbits(np.frombuffer(data, np.uint8))[:9].tolist() == [
        1, 0, 0, 1, 1, 0, 1, 1, 1,
    ]  # fmt: skip


@settings(max_examples=50, deadline=None)
@given(counts_strategy)
def test_canonical_codes_are_prefix_free(counts):
    lengths = code_lengths(counts)
    words = [
        format(c, f"0{n}b") for c, n in zip(canonical_codes(lengths), lengths, strict=True) if n
    ]
    for a in words:
        for b in words:
            assert a is b or not b.startswith(a)


def test_errors():
    with pytest.raises(ValueError, match="no code"):
        encode([0, 2], [1, 1, 0])
    with pytest.raises(ValueError, match="Kraft"):
        canonical_codes([1, 1, 1])
    with pytest.raises(ValueError):
        code_lengths([-1, 2])
    data, nbits = encode([0, 1, 1], [1, 1])
    with pytest.raises(ValueError):
        decode(data, nbits, [1, 1], 4)
    with pytest.raises(ValueError, match="no code"):
        huffman_bits([1, 1], [1, 0])
