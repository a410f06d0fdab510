# Directive errors (more cases in tests/backends/test_asm.py). The last section is wrong;
# each other case is a commented-out line that `sed` enables (errors are reported in file
# order, syntax errors first).
# RUN: rm -f %t && not dlhwc asm %s -o %t 2>&1 | filecheck %s
# RUN: not test -e %t
# RUN: sed 's/^#NOTGT //' %s > %t.1.s && not dlhwc asm %t.1.s -o %t 2>&1 | filecheck %s --check-prefix=NOTGT
# RUN: sed 's/^#BADTGT //' %s > %t.2.s && not dlhwc asm %t.2.s -o %t 2>&1 | filecheck %s --check-prefix=BADTGT
# RUN: sed 's/^#JSON //' %s > %t.3.s && not dlhwc asm %t.3.s -o %t 2>&1 | filecheck %s --check-prefix=JSON
# RUN: sed 's/^#HEX //' %s > %t.4.s && not dlhwc asm %t.4.s -o %t 2>&1 | filecheck %s --check-prefix=HEX
# RUN: sed 's/^#DTYPE //' %s > %t.5.s && not dlhwc asm %t.5.s -o %t 2>&1 | filecheck %s --check-prefix=DTYPE
# RUN: sed 's/^#SHAPE //' %s > %t.6.s && not dlhwc asm %t.6.s -o %t 2>&1 | filecheck %s --check-prefix=SHAPE
# RUN: sed 's/^#UNKDIR //' %s > %t.7.s && not dlhwc asm %t.7.s -o %t 2>&1 | filecheck %s --check-prefix=UNKDIR
# RUN: sed 's/^#EARLY //' %s > %t.8.s && not dlhwc asm %t.8.s -o %t 2>&1 | filecheck %s --check-prefix=EARLY
# RUN: not test -e %t

# CHECK:  dlhwc: error: {{.*}}directives-invalid.s:36:10: section 'weights': <u2 [2, 3] is 12 bytes, the data has 14{{$}}
# NOTGT:  dlhwc: error: {{.*}}.1.s:26:1: missing .target: the program must start with '.target NAME'{{$}}
# BADTGT: dlhwc: error: {{.*}}.2.s:27:9: unknown target 'npu' (targets: {{.*}}eie, ese{{.*}}){{$}}
# JSON:   dlhwc: error: {{.*}}.3.s:29:18: malformed .header: Expecting ',' delimiter{{$}}
# HEX:    dlhwc: error: {{.*}}.4.s:31:22: bad hex digit 'g' in section data{{$}}
# DTYPE:  dlhwc: error: {{.*}}.5.s:32:12: bad dtype 'u3'{{$}}
# SHAPE:  dlhwc: error: {{.*}}.6.s:33:19: malformed .section directive: unexpected '3'; expected ',' or ']'{{$}}
# UNKDIR: dlhwc: error: {{.*}}.7.s:34:1: unknown directive '.data' (directives: .target, .header, .section, .text){{$}}
# EARLY:  dlhwc: error: {{.*}}.8.s:35:5: instruction before .text (instructions go between .text and any .section){{$}}

#NOTGT .text
#BADTGT .target npu
.target eie
#JSON .header {"hw": 4 "x": 1}
.section codebook <i2 [2] "00000100"
#HEX .section a |u1 [2] "0g"
#DTYPE .section a u3 [1] "00"
#SHAPE .section a |u1 [1 3] "00"
#UNKDIR .data 1
#EARLY     end
.section weights <u2 [2, 3] "000100020003000400050006"
    "0007"
.text
    end
