# A whole program: header, sections before and after .text (the section order is the
# file's), data split across continuation lines, a quoted section name, a scalar.
# The disassembly is canonical, and assembling it again gives the same bytes.
# RUN: dlhwc asm %s -o %t && dlhwc disasm %t | filecheck %s
# RUN: dlhwc disasm %t -o %t.s && dlhwc asm %t.s -o %t.again && cmp %t %t.again
# RUN: dlhwc disasm --show-encoding %t -o %t.enc.s && dlhwc asm %t.enc.s -o %t.enc && cmp %t %t.enc
# RUN: dlhwc disasm %t.again -o %t.again.s && diff %t.s %t.again.s

.target   eie
.header { "resident": true, "hw": {"pes": 4}, "layers": [{"rows": 3, "name": "fc1"}] }  # JSON, any spacing
.section L0.codebook <i2 [4] "0000FF7F" "0180fe01"
.section L0.B0.ptr <u4 [2, 3]
    "000000000100000002000000"   # PE 0
    "000000000000000001000000"   # PE 1
.text
    dma.in  sym=0, buf=0
    load    layer=0, block=0
    spmv    layer=0, block=0, src=0, dst=1, first=1, last=1, bias=0, relu=1, shift=0
    dma.out sym=1, buf=1
    host    seg=0
    end
.section host0 |u1 [40]
    "00010203040506070809"
    "0a0b0c0d0e0f101112131415161718191a1b1c1d1e1f2021222324252627"
.section "weird name #1" <f4 [] "0000803f"
.section empty <i8 [0, 3]

# CHECK:      .target eie
# CHECK-NEXT: .header {"hw":{"pes":4},"layers":[{"name":"fc1","rows":3}],"resident":true}
# CHECK-NEXT: .section L0.codebook <i2 [4] "0000ff7f0180fe01"
# CHECK-NEXT: .section L0.B0.ptr <u4 [2, 3] "000000000100000002000000000000000000000001000000"
# CHECK-NEXT: .text
# CHECK-NEXT: {{^    dma.in  sym=0, buf=0$}}
# CHECK-NEXT: {{^    load    layer=0, block=0$}}
# CHECK-NEXT: {{^    spmv    layer=0, block=0, src=0, dst=1, first=1, last=1, bias=0, relu=1, shift=0$}}
# CHECK-NEXT: {{^    dma.out sym=1, buf=1$}}
# CHECK-NEXT: {{^    host    seg=0$}}
# CHECK-NEXT: {{^    end$}}
# CHECK-NEXT: .section host0 |u1 [40]
# CHECK-NEXT: {{^    "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"$}}
# CHECK-NEXT: {{^    "2021222324252627"$}}
# CHECK-NEXT: .section "weird name #1" <f4 [] "0000803f"
# CHECK-NEXT: .section empty <i8 [0, 3] ""
# CHECK-EMPTY:
