# load: layer 55..44 (12 bits), block 43..28 (16 bits), 27..0 reserved.
# RUN: dlhwc asm %s -o %t && dlhwc disasm --show-encoding %t | filecheck %s
# RUN: dlhwc disasm %t -o %t.s && dlhwc asm %t.s -o %t.again && cmp %t %t.again

# layer=7, block=9:           0x04 << 56 | 7 << 44 (0x0000700000000000)
#                             | 9 << 28 (0x0000000090000000)            = 0x0400700090000000
# layer=0x123, block=0x4567:  0x123 << 44 = 0x0012300000000000,
#                             0x4567 << 28 = 0x0000045670000000         = 0x0412345670000000
# layer=4095, block=65535:    0xfff << 44 = 0x00fff00000000000,
#                             0xffff << 28 = 0x00000ffff0000000         = 0x04fffffff0000000

.target eie
.text
    load layer=7, block=9
    load block=0x4567, layer=0x123
    load layer=4095, block=0XFFFF

# CHECK:      .text
# CHECK-NEXT: load layer=7, block=9 # 0x0400700090000000
# CHECK-NEXT: load layer=291, block=17767 # 0x0412345670000000
# CHECK-NEXT: load layer=4095, block=65535 # 0x04fffffff0000000
# CHECK-EMPTY:
