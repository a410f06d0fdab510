# host: seg 55..48 (8 bits), 47..0 reserved.
# RUN: dlhwc asm %s -o %t && dlhwc disasm --show-encoding %t | filecheck %s
# RUN: dlhwc disasm %t -o %t.s && dlhwc asm %t.s -o %t.again && cmp %t %t.again

# seg=0:   0x06 << 56                             = 0x0600000000000000
# seg=2:   0x06 << 56 | 2 << 48 (0x0002000000000000) = 0x0602000000000000
# seg=255: 0x06 << 56 | 0xff << 48 (0x00ff000000000000) = 0x06ff000000000000

.target eie
.text
    host seg=0
    host seg=2
    host seg=255

# CHECK:      .text
# CHECK-NEXT: host seg=0 # 0x0600000000000000
# CHECK-NEXT: host seg=2 # 0x0602000000000000
# CHECK-NEXT: host seg=255 # 0x06ff000000000000
# CHECK-EMPTY:
