// Which tensors quantize rounds: the f32 arguments, then each layer's output at the end
// of its single-use chain Gemm/MatMul -> bias Add (constant operand) -> Relu/Sigmoid/Tanh.
// Without calibration data every activation gets fixed<act-bits, act-bits/2>.
// RUN: dlhwc opt %s -p quantize | filecheck %s
// RUN: dlhwc opt %s -p 'quantize{act-bits=8 weight-bits=8}' | filecheck %s --check-prefix=BITS8
// RUN: dlhwc opt %s -p quantize -o %t && dlhwc opt %t -o %t.again && diff %t %t.again
// RUN: dlhwc opt %t -p quantize | filecheck %s --check-prefix=TWICE

builtin.module {
  func.func @main(%x: tensor<2x3xf32>, %n: tensor<2xi64>) -> (tensor<2x4xf32>, tensor<2x2xf32>, tensor<2x2xf32>) {
    %w = onnx.Constant dense<[[0.5, -0.25, 1.5, 0.0], [2.0, 0.125, -3.0, 1.0], [0.75, 0.5, 0.25, -1.0]]> : tensor<3x4xf32> loc("w")
    %b = onnx.Constant dense<[0.1, 0.2, 0.3, 0.4]> : tensor<4xf32> loc("b")
    %m = onnx.MatMul(%x, %w) : (tensor<2x3xf32>, tensor<3x4xf32>) -> tensor<2x4xf32> loc("mm")
    %a = onnx.Add(%m, %b) : (tensor<2x4xf32>, tensor<4xf32>) -> tensor<2x4xf32> loc("bias")
    %t = onnx.Tanh(%a) : (tensor<2x4xf32>) -> tensor<2x4xf32> loc("tanh")
    %cw = comp.weight {codebook = dense<[-0.3, 0.1, 0.7]> : tensor<3xf32>, index_bits = 2 : i64, indices = dense<[[0, 1, 2, 1], [2, 2, 0, 0]]> : tensor<2x4xui8>, mask = dense<[[true, true, true, false], [true, true, true, true]]> : tensor<2x4xi1>} : tensor<2x4xf32> loc("cw")
    %g = onnx.Gemm(%t, %cw) {transB = 1 : i64} : (tensor<2x4xf32>, tensor<2x4xf32>) -> tensor<2x2xf32> loc("fc")
    %r = onnx.Relu(%g) : (tensor<2x2xf32>) -> tensor<2x2xf32> loc("relu")
    %s = onnx.Sigmoid(%r) : (tensor<2x2xf32>) -> tensor<2x2xf32> loc("sigmoid")
    func.return %t, %r, %s : tensor<2x4xf32>, tensor<2x2xf32>, tensor<2x2xf32>
  }
}

// The f32 argument is quantized first; the i64 one is not.
// CHECK:      func.func @main(%x: tensor<2x3xf32>, %n: tensor<2xi64>)
// CHECK-NEXT:   %x_q = comp.quantize %x {format = #comp.fixed<16, 8>} : tensor<2x3xf32>
// CHECK-NOT:  comp.quantize %n
// The MatMul's matrix becomes a comp.weight; the Add's bias is no weight slot and stays.
// CHECK:        %w = comp.weight {format = #comp.fixed<16, 13>, mask = dense<{{.*}}> : tensor<3x4xi1>, values = dense<{{.*}}> : tensor<3x4xf32>} : tensor<3x4xf32> loc("w")
// CHECK-SAME:   // density 91.67%, fixed<16,13>
// CHECK:        %b = onnx.Constant dense<[1.000000e-01, 2.000000e-01, 3.000000e-01, 4.000000e-01]>
// CHECK:        %m = onnx.MatMul(%x_q, %w)
// CHECK-NEXT:   %a = onnx.Add(%m, %b)
// CHECK-NEXT:   %t = onnx.Tanh(%a)
// CHECK-NEXT:   %t_q = comp.quantize %t {format = #comp.fixed<16, 8>} : tensor<2x4xf32>
// A shared weight keeps its indices; its codebook is rounded (0.1 and 0.7 are not exact).
// CHECK-NEXT:   %cw = comp.weight {codebook = dense<[-0.299987793, 0.100006104, 0.700012207]> : tensor<3xf32>, format = #comp.fixed<16, 15>, index_bits = 2 : i64, indices = dense<{{\[\[}}0, 1, 2, 1], [2, 2, 0, 0]]> : tensor<2x4xui8>
// CHECK-NEXT:   %g = onnx.Gemm(%t_q, %cw)
// The Relu has two uses: the chain ends there and both uses read the quantized value.
// CHECK-NEXT:   %r = onnx.Relu(%g)
// CHECK-NEXT:   %r_q = comp.quantize %r {format = #comp.fixed<16, 8>} : tensor<2x2xf32>
// CHECK-NEXT:   %s = onnx.Sigmoid(%r_q)
// CHECK-NEXT:   func.return %t_q, %r_q, %s : tensor<2x4xf32>, tensor<2x2xf32>, tensor<2x2xf32>

// BITS8:      %x_q = comp.quantize %x {format = #comp.fixed<8, 4>}
// BITS8:      %w = comp.weight {format = #comp.fixed<8, 5>,
// BITS8:      %t_q = comp.quantize %t {format = #comp.fixed<8, 4>}
// BITS8:      %cw = comp.weight {codebook = dense<[-2.968750e-01, 0.1015625, 7.031250e-01]> : tensor<3xf32>, format = #comp.fixed<8, 7>,
// BITS8:      %r_q = comp.quantize %r {format = #comp.fixed<8, 4>}

// Running quantize again adds no comp.quantize.
// TWICE-COUNT-3: comp.quantize
// TWICE-NOT:     comp.quantize
