"""The dense array's instruction set, declared once as a table (dlhwc/spec/isa.py syntax).

Machine state:

- host memory: the container's symbols, one vector per symbol per input row;
- four activation buffers buf[0..3] of `act_bits`-bit codes, each a batch of vectors;
- the weight SRAM: the tiles of the loaded layer(s), each R x C weight codes (frac fw),
  tile t of a layer with KT = ceil(cols / R) input tiles holding, for k = t mod KT and
  n = t div KT, tile[r][c] = W[n*C + c][k*R + r] (zero past the layer's edges);
- the array: R x C multiply-accumulate units holding one tile stationary;
- the accumulators acc[v][row] of the layer in progress (frac fa+fw), and its biases.

Arithmetic is on integer codes (spec/fixedpoint.py): products of activation codes (frac
fa) and weight codes (frac fw) have frac fa+fw; `shift` brings a finished sum to the
output format (frac fo = fa + fw - shift). Sums are exact; `act` saturates them once.
"""

from dlhwc.spec.isa import IsaTable

ISA_TEXT = """
end     @halt         63..56=0x00 55..0=0
    | halt: the program is done with this batch of vectors
dma.in  @transfer_in  63..56=0x01 sym=55..48 buf=47..46 45..0=0
    | for every vector v: buf[buf][v] = codes of symbol[sym][v] in its format
dma.out @transfer_out 63..56=0x02 sym=55..48 buf=47..46 45..0=0
    | for every vector v: symbol[sym][v] = values of buf[buf][v] in its format
load    @load         63..56=0x03 layer=55..44 43..0=0
    | weight_sram = tiles of layer (KT * NT tiles of R x C codes); bias = biases of layer
wtile   @load         63..56=0x04 layer=55..44 tile=43..24 23..0=0
    | for r in 0..R-1: array[r][0..C-1] = weight_sram[tile][r][0..C-1]   # a row per cycle
mmtile  @compute      63..56=0x05 layer=55..44 tile=43..24 src=23..22 first=21 20..0=0
    | k, n = tile mod KT, tile div KT                  # array must hold this tile
    | for every vector v, streamed one per cycle (skewed through the rows):
    |     for c in 0..C-1 where n*C + c < rows:
    |         s = sum(array[r][c] * buf[src][v][k*R + r] for r in 0..R-1 where k*R + r < cols)
    |         acc[v][n*C + c] = s if first else acc[v][n*C + c] + s
act     @compute      63..56=0x06 layer=55..44 dst=43..42 bias=41 relu=40 shift=39..34:s 33..0=0
    | for every vector v, every row r of layer:
    |     s = sat(acc[v][r] + (bias[r] if bias else 0), acc_bits)
    |     y = sat(round_half_even(s * 2^-shift), act_bits)
    |     buf[dst][v][r] = max(y, 0) if relu else y
host    @host         63..56=0x07 seg=55..48 47..0=0
    | run host segment seg (an ONNX graph) on the host: it reads its input symbols and
    | writes its output symbols, in float, converting with their fixed-point formats
"""

ISA = IsaTable.parse("dense", ISA_TEXT)
