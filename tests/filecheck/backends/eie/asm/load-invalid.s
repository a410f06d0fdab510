# load operand errors.
# RUN: rm -f %t && not dlhwc asm %s -o %t 2>&1 | filecheck %s
# RUN: not test -e %t
# RUN: sed 's/^#BLOCK //' %s > %t.block.s && not dlhwc asm %t.block.s -o %t 2>&1 | filecheck %s --check-prefix=BLOCK
# RUN: sed 's/^#HEX //' %s > %t.hex.s && not dlhwc asm %t.hex.s -o %t 2>&1 | filecheck %s --check-prefix=HEX
# RUN: sed 's/^#MISSING //' %s > %t.missing.s && not dlhwc asm %t.missing.s -o %t 2>&1 | filecheck %s --check-prefix=MISSING
# RUN: sed 's/^#EQUALS //' %s > %t.equals.s && not dlhwc asm %t.equals.s -o %t 2>&1 | filecheck %s --check-prefix=EQUALS

# CHECK:   dlhwc: error: {{.*}}load-invalid.s:22:10: layer=4096 outside 0..4095 (12-bit unsigned){{$}}
# BLOCK:   dlhwc: error: {{.*}}.block.s:17:15: block=65536 outside 0..65535 (16-bit unsigned){{$}}
# HEX:     dlhwc: error: {{.*}}.hex.s:18:12: bad number '0xg1'{{$}}
# MISSING: dlhwc: error: {{.*}}.missing.s:19:1: load: missing operands layer, block{{$}}
# EQUALS:  dlhwc: error: {{.*}}.equals.s:20:12: unexpected '3'; expected '='{{$}}

.target eie
.text
#BLOCK load layer=0, block=0x10000
#HEX load layer=0xg1, block=0
#MISSING load
#EQUALS load layer 3, block=0
    load layer=4095, block=65535
    load layer=4096, block=0
