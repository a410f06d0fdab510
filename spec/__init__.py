"""The ground layer: what every other part of dlhwc builds on and nothing here imports
from them. Fixed-point formats, user errors, safe file output, the progress line, ISA
tables and their encodings, machine configurations, the program container, the sparse
weight encoding, and the target descriptor with its registry."""
