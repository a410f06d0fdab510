# end and barrier: no operands; the words are the opcode alone.
# RUN: dlhwc asm %s -o %t && dlhwc disasm --show-encoding %t | filecheck %s
# RUN: dlhwc disasm %t -o %t.s && dlhwc asm %t.s -o %t.again && cmp %t %t.again

# end     63..56=0x00, 55..0 reserved: 0x00 << 56 = 0x0000000000000000
# barrier 63..56=0x01, 55..0 reserved: 0x01 << 56 = 0x0100000000000000

.target eie
.text
    barrier
    end          # trailing comment

# CHECK:      .target eie
# CHECK-NEXT: .text
# CHECK-NEXT: {{^    barrier  # 0x0100000000000000$}}
# CHECK-NEXT: {{^    end      # 0x0000000000000000$}}
# CHECK-EMPTY:
