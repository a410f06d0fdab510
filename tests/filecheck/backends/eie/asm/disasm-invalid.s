# disasm errors: containers with a valid checksum whose instruction words do not decode
# (made with runtime.container), an unknown target, a text section of the wrong type, a
# corrupted file (the checksum catches it first), and a file that is not a container.
# RUN: python -c "import numpy as np; from dlhwc.spec.container import Container; Container('eie', {}, {'text': np.array([0x0100000000000000, 0x7f00000000000000], dtype='<u8')}).write('%t.opcode')"
# RUN: not dlhwc disasm %t.opcode 2>&1 | filecheck %s --check-prefix=OPCODE
# RUN: python -c "import numpy as np; from dlhwc.spec.container import Container; Container('eie', {}, {'text': np.array([0, 1], dtype='<u8')}).write('%t.reserved')"
# RUN: not dlhwc disasm --show-encoding %t.reserved 2>&1 | filecheck %s --check-prefix=RESERVED
# RUN: python -c "import numpy as np; from dlhwc.spec.container import Container; Container('npu', {}, {}).write('%t.target')"
# RUN: not dlhwc disasm %t.target 2>&1 | filecheck %s --check-prefix=TARGET
# RUN: python -c "import numpy as np; from dlhwc.spec.container import Container; Container('eie', {}, {'text': np.zeros(2, dtype='<u4')}).write('%t.dtype')"
# RUN: not dlhwc disasm %t.dtype 2>&1 | filecheck %s --check-prefix=DTYPE
# RUN: python -c "import sys; b = bytearray(open(sys.argv[1], 'rb').read()); b[-40] ^= 1; open(sys.argv[2], 'wb').write(b)" %t.opcode %t.corrupt
# RUN: not dlhwc disasm %t.corrupt 2>&1 | filecheck %s --check-prefix=CORRUPT
# RUN: not dlhwc disasm %s 2>&1 | filecheck %s --check-prefix=MAGIC
# RUN: rm -f %t.out.s && not dlhwc disasm %t.opcode -o %t.out.s 2>&1 | filecheck %s --check-prefix=OPCODE
# RUN: not test -e %t.out.s

# OPCODE:   dlhwc: error: {{.*}}.opcode: word 1: unknown opcode 0x7f in word 0x7f00000000000000{{$}}
# RESERVED: dlhwc: error: {{.*}}.reserved: word 1: end: bits 55..0 of 0x0000000000000001 must be 0x0{{$}}
# TARGET:   dlhwc: error: {{.*}}.target: unknown target 'npu' (targets: {{.*}}eie, ese{{.*}}){{$}}
# DTYPE:    dlhwc: error: {{.*}}.dtype: section 'text' must be a 1-D array of <u8 instruction words, not <u4 [2]{{$}}
# CORRUPT:  dlhwc: error: {{.*}}.corrupt: container checksum mismatch: the file is corrupted{{$}}
# MAGIC:    dlhwc: error: {{.*}}disasm-invalid.s: not a dlhwc program container (bad magic){{$}}
