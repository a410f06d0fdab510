# dma.in / dma.out operand errors.
# RUN: rm -f %t && not dlhwc asm %s -o %t 2>&1 | filecheck %s
# RUN: not test -e %t
# RUN: sed 's/^#SYM //' %s > %t.sym.s && not dlhwc asm %t.sym.s -o %t 2>&1 | filecheck %s --check-prefix=SYM
# RUN: sed 's/^#NEG //' %s > %t.neg.s && not dlhwc asm %t.neg.s -o %t 2>&1 | filecheck %s --check-prefix=NEG
# RUN: sed 's/^#MISSING //' %s > %t.missing.s && not dlhwc asm %t.missing.s -o %t 2>&1 | filecheck %s --check-prefix=MISSING
# RUN: sed 's/^#OPERAND //' %s > %t.operand.s && not dlhwc asm %t.operand.s -o %t 2>&1 | filecheck %s --check-prefix=OPERAND
# RUN: sed 's/^#TYPO //' %s > %t.typo.s && not dlhwc asm %t.typo.s -o %t 2>&1 | filecheck %s --check-prefix=TYPO
# RUN: sed 's/^#EMPTY //' %s > %t.empty.s && not dlhwc asm %t.empty.s -o %t 2>&1 | filecheck %s --check-prefix=EMPTY

# CHECK:   dlhwc: error: {{.*}}dma-invalid.s:28:20: buf=4 outside 0..3 (2-bit unsigned){{$}}
# SYM:     dlhwc: error: {{.*}}.sym.s:21:8: sym=256 outside 0..255 (8-bit unsigned){{$}}
# NEG:     dlhwc: error: {{.*}}.neg.s:22:16: buf=-1 outside 0..3 (2-bit unsigned){{$}}
# MISSING: dlhwc: error: {{.*}}.missing.s:23:1: dma.out: missing operand buf{{$}}
# OPERAND: dlhwc: error: {{.*}}.operand.s:24:15: dma.in has no operand 'buff'; did you mean 'buf'?{{$}}
# TYPO:    dlhwc: error: {{.*}}.typo.s:25:1: unknown mnemonic 'dma.inn'; did you mean 'dma.in'?{{$}}
# EMPTY:   dlhwc: error: {{.*}}.empty.s:26:12: unexpected ','; expected a number{{$}}

.target eie
.text
#SYM dma.in sym=256, buf=0
#NEG dma.out sym=0, buf=-1
#MISSING dma.out sym=0
#OPERAND dma.in sym=0, buff=1
#TYPO dma.inn sym=0, buf=0
#EMPTY dma.in sym=, buf=0
    dma.in sym=1, buf=1
    dma.out sym=1, buf=4
