# end and barrier take no operands.
# RUN: rm -f %t && not dlhwc asm %s -o %t 2>&1 | filecheck %s
# RUN: not test -e %t
# RUN: sed 's/^#TYPO //' %s > %t.typo.s && not dlhwc asm %t.typo.s -o %t 2>&1 | filecheck %s --check-prefix=TYPO
# RUN: sed 's/^#EXTRA //' %s > %t.extra.s && not dlhwc asm %t.extra.s -o %t 2>&1 | filecheck %s --check-prefix=EXTRA

# CHECK: dlhwc: error: {{.*}}control-invalid.s:15:9: end takes no operands (got 'code'){{$}}
# TYPO:  dlhwc: error: {{.*}}.typo.s:13:1: unknown mnemonic 'barier'; did you mean 'barrier'?{{$}}
# EXTRA: dlhwc: error: {{.*}}.extra.s:14:9: unexpected '1'; expected an operand name or end of line{{$}}

.target eie
.text
#TYPO barier
#EXTRA barrier 1
    end code=0
