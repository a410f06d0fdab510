"""The ESE instruction set, declared once as a table (see spec/isa.py for the syntax).

Coarse-grained instructions in the spirit of VTA: one `seq` runs a whole recurrent layer
direction over time, repeating the `body` instructions that follow it once per time step;
inside the body, `spmv` runs a gate matrix x vector product on the PE channels and `cell`
the element-wise and activation-table phase of one step.

The machine state the instructions act on (per input sequence, i.e. per batch row):

- host memory: the container's symbols (inputs, outputs and the tensors that cross
  between the accelerator and host segments), one tensor per symbol per batch row;
- 16 on-chip buffers buf[0..15] of 16-bit codes (32-bit for sequence lengths), each
  holding one tensor per row: an input sequence [T, input], an output sequence
  [T, dirs, H], states [dirs, H], a length [];
- per PE k (N PEs, row i of every matrix on PE i mod N): the pointer and sparse-matrix
  SRAMs holding the loaded column blocks of the matrices W (gates*H x input),
  R (gates*H x H; for a GRU with linear_before_reset = 0 only the z and r rows,
  2H x H) and Rh (that GRU's h-gate rows of R, H x H), and the accumulators
  acc_W, acc_R, acc_Rh of the rows it owns. Entries are 16 bits: a 12-bit two's
  complement weight code w and a 4-bit relative row index z (spec/encoding.py;
  a filler is w = 0, z = 15); there is no codebook;
- the element-wise units: the layer direction's biases b (frac fl, ONNX's two biases
  summed), GRU's Rb_h, LSTM's peepholes, the sigmoid and tanh tables
  (spec/ese/lut.py), the state h (and LSTM's c) of the running sequence, and
  GRU's reset-gate product rh;
- the loop state of the running `seq`: its step s, the row's time index t, x_t.

All arithmetic is on integer codes, as the `gates` pseudo-code below and the guide's
"Step arithmetic" (backends/ese/README.md) define it: the step functions `cell` names
(lstm_step, gru_step, rnn_step) are written out there; the simulator implements them
in runtime/ese/arith.py, the golden model again in backends/ese/golden.py. Products are
exact integer sums, `cell` rounds them to the pre-activation format fl and finishes one
step.
"""

from dlhwc.spec.isa import IsaTable

ESE_ISA_TEXT = """
end       @halt         63..56=0x00 55..0=0
    | halt: the program is done with this input sequence
barrier   @sync         63..56=0x01 55..0=0
    | wait until the PE channels and the element-wise units have drained
dma.in    @transfer_in  63..56=0x02 sym=55..48 buf=47..44 43..0=0
    | buf[buf] = symbol[sym]        # this row's whole tensor: a sequence [T, n], states
    |                               # [dirs, n], a length [] or a vector [n], as codes
dma.out   @transfer_out 63..56=0x03 sym=55..48 buf=47..44 43..0=0
    | symbol[sym] = buf[buf]        # this row's tensor, codes to host values
load      @load         63..56=0x04 layer=55..44 dir=43 mat=42..41 block=40..25 24..0=0
    | M = (W, R, Rh)[mat] of direction dir of layer
    | for each PE k:
    |     ptr_sram[k][M]   = pointers of (M, block) for PE k        # cols+1 entries
    |     spmat_sram[k][M] = (w, z) entries of (M, block) for PE k  # 16 bits each
load.cell @load         63..56=0x05 layer=55..44 dir=43 42..0=0
    | element-wise units = direction dir of layer: biases b [gates*H] (frac fl),
    |     GRU's Rb_h [H] (linear_before_reset = 1), LSTM's peepholes P [3H],
    |     the sigmoid and tanh tables (slopes, intercepts) and the layer's formats
seq       @loop         63..56=0x06 layer=55..44 dir=43 rev=42 fresh=41 body=40..31 x=30..27 y=26..23 h0=22..19 c0=18..15 lens=14..11 yh=10..7 yc=6..3 has_h0=2 has_c0=1 has_lens=0
    | T = steps of buf[x]                    # [T, input]
    | L = buf[lens] if has_lens else T       # this row's sequence length
    | if fresh:                              # the layer's first direction
    |     buf[y] = 0 [T, dirs, H];  buf[yh] = 0 [dirs, H];  buf[yc] = 0 [dirs, H]
    | h = buf[h0][dir] if has_h0 else 0;  c = buf[c0][dir] if has_c0 else 0
    | for s in 0..T-1:
    |     t = (L-1-s if rev else s)          # the step's time index
    |     x_t = buf[x][t]
    |     run the next `body` instructions   # spmv, gates, cell, load; they see s, t, x_t
    |                                        # (rows with s >= L keep h, c: see cell)
    | buf[yh][dir] = h if L > 0 else 0       # a zero-length sequence leaves zero states
    | if kind == LSTM: buf[yc][dir] = c if L > 0 else 0
    | continue after the body
spmv      @compute      63..56=0x07 layer=55..44 dir=43 mat=42..41 block=40..25 first=24 last=23 22..0=0
    | M, acc, a = [(W, acc_W, x_t), (R, acc_R, h), (Rh, acc_Rh, rh)][mat]
    | if first: acc[row] = 0 for every row of M
    | for j in columns of block, in order, where a[j] != 0:   # LNZD + broadcast
    |     for each PE k (in parallel):
    |         row = k                                  # PE-local rows k, k+N, ...
    |         for e in ptr_sram[k][M][j - col0] .. ptr_sram[k][M][j - col0 + 1] - 1:
    |             (w, z) = spmat_sram[k][M][e]         # w = 0: a filler
    |             row += z * N
    |             acc[row] += w * a[j]                 # exact: no rounding, no saturation
    |             row += N
    | (last marks the last block of M: the sum is complete)
gates     @compute      63..56=0x08 layer=55..44 dir=43 42..0=0
    | # GRU with linear_before_reset = 0: the reset gate, before R's h rows run
    | p_r = sat16(rnd(acc_W[r] >> (fx+fw-fl)) + rnd(acc_R[r] >> (fh+fr-fl)) + b[r]),
    |       clamped to +-clip
    | r   = f1(p_r)                          # table, frac 15 (fl for Relu)
    | rh  = sat16(rnd(r * h))                # frac fh: the vector of spmv mat=Rh
cell      @compute      63..56=0x09 layer=55..44 dir=43 42..0=0
    | one step of arith.lstm_step / gru_step / rnn_step on acc_W, acc_R (frac fx+fw,
    | fh+fr), b, the peepholes and tables, h and c:
    |   LSTM: (h', c') = lstm_step(acc_W, acc_R, b, c, P, acts, tables, clip, input_forget)
    |   GRU:  h' = gru_step(acc_W, acc_R[z, r], term, b, h, ...) with the h gate's term
    |         lbr=0: rnd(acc_Rh >> (fh+fr-fl))        lbr=1: rnd(r * (rnd(acc_R[h] >>
    |         (fh+fr-fl)) + Rb_h))
    |   RNN:  h' = rnn_step(acc_W, acc_R, b, acts, tables, clip)
    | if s < L:                              # rows past their length are frozen
    |     h, c = h', c'
    |     buf[y][t][dir] = h
host      @host         63..56=0x0a seg=55..48 47..0=0
    | run host segment seg (an ONNX graph) on the host: it reads its input symbols and
    | writes its output symbols, in float, converting with their fixed-point formats
"""

ESE_ISA = IsaTable.parse("ese", ESE_ISA_TEXT)

MATRICES = ("W", "R", "Rh")
"""The `mat` field: the input weights, the recurrent weights (GRU lbr=0: z, r rows), and
the recurrent weights of a GRU's h gate when linear_before_reset = 0."""

HARDWARE_ACTIVATIONS = ("Sigmoid", "Tanh", "Relu")
"""The activation functions `cell` computes (sigmoid and tanh by table, Relu exactly)."""

NUM_BUFFERS = 16
"""On-chip buffers buf[0..15] (the ISA's 4-bit buffer fields)."""
