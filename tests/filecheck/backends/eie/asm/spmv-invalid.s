# spmv errors: one line `file:line:col: reason`, exit status 1, and no output file.
# The last line is wrong; each other case is a commented-out line that `sed` enables
# (it comes first in the file, so its error is the one reported).
# RUN: rm -f %t && not dlhwc asm %s -o %t 2>&1 | filecheck %s
# RUN: not test -e %t
# RUN: sed 's/^#NEG //' %s > %t.neg.s && not dlhwc asm %t.neg.s -o %t 2>&1 | filecheck %s --check-prefix=NEG
# RUN: sed 's/^#FLAG //' %s > %t.flag.s && not dlhwc asm %t.flag.s -o %t 2>&1 | filecheck %s --check-prefix=FLAG
# RUN: sed 's/^#MISSING //' %s > %t.missing.s && not dlhwc asm %t.missing.s -o %t 2>&1 | filecheck %s --check-prefix=MISSING
# RUN: sed 's/^#DUP //' %s > %t.dup.s && not dlhwc asm %t.dup.s -o %t 2>&1 | filecheck %s --check-prefix=DUP
# RUN: sed 's/^#UNKNOWN //' %s > %t.unknown.s && not dlhwc asm %t.unknown.s -o %t 2>&1 | filecheck %s --check-prefix=UNKNOWN
# RUN: sed 's/^#MNEMONIC //' %s > %t.mnemonic.s && not dlhwc asm %t.mnemonic.s -o %t 2>&1 | filecheck %s --check-prefix=MNEMONIC
# RUN: sed 's/^#NUMBER //' %s > %t.number.s && not dlhwc asm %t.number.s -o %t 2>&1 | filecheck %s --check-prefix=NUMBER
# RUN: sed 's/^#SYNTAX //' %s > %t.syntax.s && not dlhwc asm %t.syntax.s -o %t 2>&1 | filecheck %s --check-prefix=SYNTAX
# RUN: not test -e %t

# CHECK:    dlhwc: error: {{.*}}spmv-invalid.s:37:75: shift=40 outside -32..31 (6-bit signed){{$}}
# CHECK-NOT: Traceback
# NEG:      dlhwc: error: {{.*}}.neg.s:29:71: shift=-33 outside -32..31 (6-bit signed){{$}}
# FLAG:     dlhwc: error: {{.*}}.flag.s:30:38: first=2 outside 0..1 (1-bit unsigned){{$}}
# MISSING:  dlhwc: error: {{.*}}.missing.s:31:1: spmv: missing operands last, relu{{$}}
# DUP:      dlhwc: error: {{.*}}.dup.s:32:80: duplicate operand 'layer'{{$}}
# UNKNOWN:  dlhwc: error: {{.*}}.unknown.s:33:71: spmv has no operand 'shfit'; did you mean 'shift'?{{$}}
# MNEMONIC: dlhwc: error: {{.*}}.mnemonic.s:34:1: unknown mnemonic 'spvm'; did you mean 'spmv'?{{$}}
# NUMBER:   dlhwc: error: {{.*}}.number.s:35:77: bad number '1O'{{$}}
# SYNTAX:   dlhwc: error: {{.*}}.syntax.s:36:14: unexpected 'block'; expected ',' or end of line{{$}}

.target eie
.text
#NEG spmv layer=0, block=0, src=0, dst=0, first=0, last=0, bias=0, relu=0, shift=-0x21
#FLAG spmv layer=0, block=0, src=0, dst=0, first=2, last=0, bias=0, relu=0, shift=0
#MISSING spmv layer=0, block=0, src=0, dst=0, first=0, bias=0, shift=0
#DUP spmv layer=0, block=0, src=0, dst=0, first=0, last=0, bias=0, relu=0, shift=0, layer=1
#UNKNOWN spmv layer=0, block=0, src=0, dst=0, first=0, last=0, bias=0, relu=0, shfit=0
#MNEMONIC spvm layer=0
#NUMBER spmv layer=0, block=0, src=0, dst=0, first=0, last=0, bias=0, relu=0, shift=1O
#SYNTAX spmv layer=0 block=0, src=0, dst=0, first=0, last=0, bias=0, relu=0, shift=0
    spmv layer=0, block=0, src=0, dst=0, first=0, last=0, bias=0, relu=0, shift=40
