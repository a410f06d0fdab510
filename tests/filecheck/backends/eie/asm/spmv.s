# spmv: operands in any order, in decimal, hex and negative; printed in table order with
# the encoding words, which are worked out by hand from the bit layout of
# spec/eie/isa.py (not by running the encoder).
# RUN: dlhwc asm %s -o %t && dlhwc disasm --show-encoding %t | filecheck %s
# RUN: dlhwc disasm --show-encoding %t -o %t.s && dlhwc asm %t.s -o %t.again && cmp %t %t.again

# spmv: 63..56=0x05, layer 55..44, block 43..28, src 27..26, dst 25..24, first 23,
# last 22, bias 21, relu 20, shift 19..14 (signed), 13..0 reserved zero.
#
# First word:
#   opcode 0x05                      << 56 = 0x0500000000000000
#   layer  3                         << 44 = 0x0000300000000000
#   block  2                         << 28 = 0x0000000020000000
#   src    0                         << 26 = 0x0000000000000000
#   dst    1                         << 24 = 0x0000000001000000
#   first  1                         << 23 = 0x0000000000800000
#   last   1                         << 22 = 0x0000000000400000
#   bias   1                         << 21 = 0x0000000000200000
#   relu   1                         << 20 = 0x0000000000100000
#   shift  -3 = 64 - 3 = 61 = 0b111101 << 14 = 0x00000000000f4000   (61 * 16384 = 999424)
#   sum (OR)                               = 0x0500300021ff4000
# Second word: layer 1 << 44 = 0x0000100000000000, src 3 << 26 = 0x000000000c000000,
#   dst 2 << 24 = 0x0000000002000000, shift 31 = 0b011111 << 14 = 0x000000000007c000
#   -> 0x050010000e07c000
# Third word: every bit of 55..19 set (layer 0xfff, block 0xffff, src 3, dst 3, the four
#   flags, and shift -32 = 0b100000 sets only bit 19): (1 << 56) - (1 << 19)
#   = 0x00fffffffff80000 -> 0x05fffffffff80000

.target eie
.text
    spmv shift=-3, relu=1, bias=1, last=1, first=1, dst=1, src=0, block=2, layer=3
    spmv layer=1, block=0, src=3, dst=2, first=0, last=0, bias=0, relu=0, shift=0x1f
    spmv layer=0xfff, block=65535, src=3, dst=3, first=1, last=1, bias=1, relu=1, shift=-32  # a comment

# CHECK:      .target eie
# CHECK-NEXT: .text
# CHECK-NEXT: spmv layer=3, block=2, src=0, dst=1, first=1, last=1, bias=1, relu=1, shift=-3 # 0x0500300021ff4000
# CHECK-NEXT: spmv layer=1, block=0, src=3, dst=2, first=0, last=0, bias=0, relu=0, shift=31 # 0x050010000e07c000
# CHECK-NEXT: spmv layer=4095, block=65535, src=3, dst=3, first=1, last=1, bias=1, relu=1, shift=-32 # 0x05fffffffff80000
# CHECK-EMPTY:
