"""Compression algorithms (k-means weight sharing, Huffman coding, the ledger), used by
the passes in compiler/passes/ and free of IR concerns."""
