// The parser rejects an operand list the op's ONNX inputs do not allow (Gemm: A, B and
// an optional C).
// RUN: not dlhwc opt %s 2>&1 | filecheck %s

builtin.module {
  func.func @main(%x: tensor<2x2xf32>) -> tensor<2x2xf32> {
    %a = onnx.Gemm(%x) : (tensor<2x2xf32>) -> tensor<2x2xf32>
    func.return %a : tensor<2x2xf32>
  }
}

// CHECK: dlhwc: error: {{.*}}invalid-input-count.mlir:7:19: onnx.Gemm takes at least 2 and at most 3 operands, got 1{{$}}
