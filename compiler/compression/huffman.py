"""Huffman coding over small alphabets (codebook indices, zero-run lengths).

Codes are canonical (Deflate's rule): symbols sorted by (code length, symbol) get
consecutive codes, so a code is fully described by its code lengths, which is all the
IR stores (`comp.weight`'s `index_code` / `run_code`). Bits are written most significant
first; a stream is packed into bytes with `np.packbits` (big-endian bit order, the last
byte padded with zeros).
"""

from __future__ import annotations

import heapq

import numpy as np

# Symbols encoded per vectorized step (bounds the temporary per-bit arrays).
_CHUNK = 1 << 20
# Decoding looks up this many bits at a time; longer codes take a slower path.
_TABLE_BITS = 12


def code_lengths(counts) -> np.ndarray:
    """Optimal prefix-code lengths (int64) for symbol ``counts`` (Huffman's algorithm).

    Absent symbols (count 0) get length 0; a single present symbol gets length 1. Ties
    are broken deterministically (by weight, then creation order), so equal counts
    always give equal lengths.
    """
    counts = np.asarray(counts)
    if counts.ndim != 1 or np.any(counts < 0):
        raise ValueError("counts must be a 1-d array of non-negative numbers")
    lengths = np.zeros(counts.size, dtype=np.int64)
    present = np.flatnonzero(counts)
    if present.size == 1:
        lengths[present] = 1
    if present.size <= 1:
        return lengths
    # Nodes 0..m-1 are the present symbols; merged nodes follow. parent[] links them.
    heap = [(int(counts[s]), i) for i, s in enumerate(present)]
    heapq.heapify(heap)
    parent: list[int] = [-1] * len(heap)
    while len(heap) > 1:
        wa, a = heapq.heappop(heap)
        wb, b = heapq.heappop(heap)
        node = len(parent)
        parent.append(-1)
        parent[a] = parent[b] = node
        heapq.heappush(heap, (wa + wb, node))
    depth = [0] * len(parent)
    for node in range(len(parent) - 2, -1, -1):  # parents are created after children
        depth[node] = depth[parent[node]] + 1
    lengths[present] = depth[: present.size]
    return lengths


def _check_lengths(lengths) -> np.ndarray:
    lengths = np.asarray(lengths, dtype=np.int64)
    if lengths.ndim != 1 or np.any(lengths < 0):
        raise ValueError("code lengths must be a 1-d array of non-negative integers")
    kraft = sum(2.0 ** -int(n) for n in lengths if n > 0)
    if kraft > 1.0 + 1e-12:
        raise ValueError(f"code lengths violate the Kraft inequality (sum {kraft:.4f} > 1)")
    return lengths


def canonical_codes(lengths) -> list[int]:
    """The canonical code of every symbol (a Python int; 0 for absent symbols).

    Symbol s's code is the integer whose ``lengths[s]`` bits, most significant first,
    are written for it.
    """
    lengths = _check_lengths(lengths)
    codes = [0] * lengths.size
    code, prev = 0, 0
    for s in sorted(np.flatnonzero(lengths).tolist(), key=lambda s: (lengths[s], s)):
        n = int(lengths[s])
        code <<= n - prev
        codes[s] = code
        code += 1
        prev = n
    return codes


def huffman_bits(counts, lengths) -> int:
    """Bits of a stream with these symbol ``counts`` coded with these ``lengths``."""
    counts = np.asarray(counts, dtype=np.int64)
    lengths = np.asarray(lengths, dtype=np.int64)
    if np.any((counts > 0) & (lengths == 0)):
        raise ValueError("a symbol that occurs has no code (length 0)")
    return int(np.dot(counts, lengths))


def _bit_table(lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every symbol's code as bits, concatenated, and where each symbol's bits start."""
    codes = canonical_codes(lengths)
    starts = np.zeros(lengths.size + 1, dtype=np.int64)
    np.cumsum(lengths, out=starts[1:])
    bits = np.zeros(int(starts[-1]), dtype=np.uint8)
    for s in np.flatnonzero(lengths).tolist():  # one step per symbol of the alphabet
        n = int(lengths[s])
        bits[starts[s] : starts[s] + n] = [(codes[s] >> (n - 1 - i)) & 1 for i in range(n)]
    return bits, starts[:-1]


def encode(symbols, lengths) -> tuple[bytes, int]:
    """Huffman-code ``symbols`` (ints < len(lengths)) with the canonical code of ``lengths``.

    Returns the packed bytes and the number of valid bits. Vectorized: each symbol's
    bits are gathered from a per-symbol bit table with `np.repeat` and a cumulative sum,
    then packed with `np.packbits`.
    """
    lengths = _check_lengths(lengths)
    symbols = np.asarray(symbols, dtype=np.int64).reshape(-1)
    if symbols.size and (symbols.min() < 0 or symbols.max() >= lengths.size):
        raise ValueError("a symbol lies outside the alphabet")
    if np.any(lengths[symbols] == 0):
        raise ValueError("a symbol that occurs has no code (length 0)")
    table, table_start = _bit_table(lengths)
    nbits = int(lengths[symbols].sum())
    out = np.empty(nbits, dtype=np.uint8)
    pos = 0
    for lo in range(0, symbols.size, _CHUNK):
        sym = symbols[lo : lo + _CHUNK]
        lens = lengths[sym]
        n = int(lens.sum())
        first = np.cumsum(lens) - lens  # where each symbol's bits start in this chunk
        offset = np.arange(n, dtype=np.int64) - np.repeat(first, lens)
        out[pos : pos + n] = table[np.repeat(table_start[sym], lens) + offset]
        pos += n
    return np.packbits(out).tobytes(), nbits


def decode(data: bytes, nbits: int, lengths, count: int) -> np.ndarray:
    """The ``count`` symbols (int64) that `encode` wrote into ``data`` (``nbits`` bits).

    Table-driven: a table indexed by the next 12 bits gives the symbol and its length;
    longer codes fall back to canonical decoding bit by bit. It loops in Python once per
    symbol, which is fine because decoding only serves verification (tests, checks of
    the encoder), never the compile path.
    """
    lengths = _check_lengths(lengths)
    if count == 0:
        return np.zeros(0, dtype=np.int64)
    if not lengths.any():
        raise ValueError("an empty code cannot decode symbols")
    codes = canonical_codes(lengths)
    bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8))
    if bits.size < nbits:
        raise ValueError(f"{nbits} bits announced but only {bits.size} given")
    maxlen = int(lengths.max())
    k = min(maxlen, _TABLE_BITS)
    # window[t]: the k bits from position t on (zeros past the end), as an integer.
    padded = np.concatenate([bits[:nbits], np.zeros(k, dtype=np.uint8)]).astype(np.int64)
    window = np.zeros(nbits + 1, dtype=np.int64)
    for i in range(k):
        window = (window << 1) | padded[i : i + nbits + 1]
    table_sym = np.full(1 << k, -1, dtype=np.int64)
    table_len = np.zeros(1 << k, dtype=np.int64)
    long_codes: dict[tuple[int, int], int] = {}
    for s in np.flatnonzero(lengths).tolist():
        n = int(lengths[s])
        if n <= k:
            lo = codes[s] << (k - n)
            table_sym[lo : lo + (1 << (k - n))] = s
            table_len[lo : lo + (1 << (k - n))] = n
        else:
            long_codes[(n, codes[s])] = s
    win, tsym, tlen, bit_list = window.tolist(), table_sym.tolist(), table_len.tolist(), None
    out = [0] * count
    pos = 0
    for i in range(count):
        if pos >= nbits:
            raise ValueError(f"the stream ends after {i} of {count} symbols")
        w = win[pos]
        s = tsym[w]
        if s >= 0:
            out[i] = s
            pos += tlen[w]
            continue
        if bit_list is None:
            bit_list = padded.tolist()
        code, n = w, k
        while (n, code) not in long_codes:
            if n >= maxlen or pos + n >= nbits:
                raise ValueError(f"invalid code at bit {pos}")
            code = (code << 1) | bit_list[pos + n]
            n += 1
        out[i] = long_codes[(n, code)]
        pos += n
    if pos > nbits:
        raise ValueError("the last code runs past the end of the stream")
    return np.array(out, dtype=np.int64)
