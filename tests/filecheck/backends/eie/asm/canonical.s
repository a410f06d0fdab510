# A program in canonical form (the disassembler's): assembling it and disassembling the
# result gives the same text, once these comment lines are stripped.
# RUN: sed '/^#/d' %s > %t.in.s && dlhwc asm %t.in.s -o %t && dlhwc disasm %t -o %t.out.s && diff %t.in.s %t.out.s
# RUN: dlhwc asm %s -o %t.direct && cmp %t %t.direct
.target eie
.header {"hw":{"pes":2},"resident":false}
.section L0.bias <i8 [2] "feffffffffffffff0300000000000000"
.text
    dma.in  sym=0, buf=0
    load    layer=0, block=0
    spmv    layer=0, block=0, src=0, dst=1, first=1, last=1, bias=1, relu=0, shift=-2
    barrier
    dma.out sym=1, buf=1
    end
.section L0.B0.spmat |u1 [36]
    "0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20"
    "21222324"
