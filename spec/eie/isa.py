"""The EIE instruction set, declared once as a table (see spec/isa.py for the syntax).

The machine state the instructions act on:

- host memory: the container's symbols (inputs, outputs, and the tensors that cross
  between the accelerator and host segments), one vector per symbol per input row;
- four on-chip activation buffers of `act_bits`-bit codes, buf[0..3]; element j of a
  vector lives in PE j mod N (in the register files, or the activation SRAM when the
  vector is longer than they hold);
- per PE: the pointer and sparse-matrix SRAMs, a 16-entry codebook, the biases and
  accumulators of the rows the PE owns (row i on PE i mod N);
- the container's layer table: per layer its rows, columns, column blocks and formats.

All arithmetic is on integer codes (spec/fixedpoint.py): a product of an activation
code (frac fa) and a codebook code (frac fw) has frac fa+fw; biases are stored at that
precision; `shift` brings a finished sum to the output format (frac fo = fa+fw-shift).
"""

from dlhwc.spec.isa import IsaTable

EIE_ISA_TEXT = """
end       @halt         63..56=0x00 55..0=0
    | halt: the program is done with this input vector
barrier   @sync         63..56=0x01 55..0=0
    | wait until every PE's activation FIFO and pipeline have drained
dma.in    @transfer_in  63..56=0x02 sym=55..48 buf=47..46 45..0=0
    | n = len(symbol[sym])
    | for j in 0..n-1: buf[buf][j] = symbol[sym][j]          # element j to PE j mod N
dma.out   @transfer_out 63..56=0x03 sym=55..48 buf=47..46 45..0=0
    | n = len(symbol[sym])
    | for j in 0..n-1: symbol[sym][j] = buf[buf][j]
load      @load         63..56=0x04 layer=55..44 block=43..28 27..0=0
    | for each PE k:
    |     ptr_sram[k]   = pointers of (layer, block) for PE k     # cols+1 entries
    |     spmat_sram[k] = (v, z) entries of (layer, block) for PE k
    |     codebook[k]   = codebook of layer                       # 2^index_bits codes
    |     bias[k]       = biases of the rows of layer on PE k     # frac fa+fw
spmv      @compute      63..56=0x05 layer=55..44 block=43..28 src=27..26 dst=25..24 first=23 last=22 bias=21 relu=20 shift=19..14:s 13..0=0
    | if first: acc[row] = 0 for every row of layer
    | for j in columns of block, in order, where a = buf[src][j] != 0:   # LNZD + broadcast
    |     for each PE k (in parallel):
    |         row = k                                  # PE-local rows k, k+N, ...
    |         for e in ptr_sram[k][j - col0] .. ptr_sram[k][j - col0 + 1] - 1:
    |             (v, z) = spmat_sram[k][e]
    |             row += z * N
    |             acc[row] += codebook[k][v] * a       # v = 0 is a filler: codebook[0] = 0
    |             row += N
    | if last:
    |     for every row r of layer:
    |         s = sat(acc[r] + (bias[r] if bias else 0), acc_bits)
    |         y = sat(round_half_even(s * 2^-shift), act_bits)
    |         buf[dst][r] = max(y, 0) if relu else y
host      @host         63..56=0x06 seg=55..48 47..0=0
    | run host segment seg (an ONNX graph) on the host: it reads its input symbols and
    | writes its output symbols, in float, converting with their fixed-point formats
"""

EIE_ISA = IsaTable.parse("eie", EIE_ISA_TEXT)
