"""Targets: one folder per accelerator (eie/, ese/), each with its descriptor (target.py,
registered through the entry-point group `dlhwc.targets`), its lowering, its program
builder and its golden model; plus what they share: the host/accelerator program
builder (program.py), the assembler (asm.py) and the guides' generator (docs.py)."""
