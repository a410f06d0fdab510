# dma.in and dma.out: sym 55..48 (8 bits), buf 47..46 (2 bits), 45..0 reserved.
# RUN: dlhwc asm %s -o %t && dlhwc disasm --show-encoding %t | filecheck %s
# RUN: dlhwc disasm %t -o %t.s && dlhwc asm %t.s -o %t.again && cmp %t %t.again

# dma.in  sym=0, buf=0:   0x02 << 56                                   = 0x0200000000000000
# dma.in  sym=5, buf=3:   0x02 << 56 | 5 << 48 (0x0005000000000000)
#                         | 3 << 46 (0x0000c00000000000)               = 0x0205c00000000000
# dma.out sym=255, buf=1: 0x03 << 56 | 0xff << 48 (0x00ff000000000000)
#                         | 1 << 46 (0x0000400000000000)               = 0x03ff400000000000
# dma.out sym=1, buf=2:   0x03 << 56 | 1 << 48 | 2 << 46 (0x0000800000000000)
#                                                                      = 0x0301800000000000

.target eie
.text
    dma.in sym=0, buf=0
    dma.in buf=3, sym=5
    dma.out sym=0xff, buf=+1
    dma.out buf=0x2, sym=1

# CHECK:      .text
# CHECK-NEXT: dma.in sym=0, buf=0 # 0x0200000000000000
# CHECK-NEXT: dma.in sym=5, buf=3 # 0x0205c00000000000
# CHECK-NEXT: dma.out sym=255, buf=1 # 0x03ff400000000000
# CHECK-NEXT: dma.out sym=1, buf=2 # 0x0301800000000000
# CHECK-EMPTY:
