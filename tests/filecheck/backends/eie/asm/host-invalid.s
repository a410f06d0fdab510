# host operand errors.
# RUN: rm -f %t && not dlhwc asm %s -o %t 2>&1 | filecheck %s
# RUN: not test -e %t
# RUN: sed 's/^#NEG //' %s > %t.neg.s && not dlhwc asm %t.neg.s -o %t 2>&1 | filecheck %s --check-prefix=NEG
# RUN: sed 's/^#OTHER //' %s > %t.other.s && not dlhwc asm %t.other.s -o %t 2>&1 | filecheck %s --check-prefix=OTHER

# CHECK: dlhwc: error: {{.*}}host-invalid.s:15:10: seg=256 outside 0..255 (8-bit unsigned){{$}}
# NEG:   dlhwc: error: {{.*}}.neg.s:13:6: seg=-1 outside 0..255 (8-bit unsigned){{$}}
# OTHER: dlhwc: error: {{.*}}.other.s:14:13: host has no operand 'layer' (operands: seg){{$}}

.target eie
.text
#NEG host seg=-1
#OTHER host seg=0, layer=1
    host seg=256
