// The verifier rejects more results than the ONNX operator has.
// RUN: not dlhwc opt %s 2>&1 | filecheck %s

builtin.module {
  func.func @main(%x: tensor<2xf32>) -> tensor<2xf32> {
    %a, %b = onnx.Relu(%x) : (tensor<2xf32>) -> (tensor<2xf32>, tensor<2xf32>)
    func.return %a : tensor<2xf32>
  }
}

// CHECK: dlhwc: error: {{.*}}invalid-too-many-results.mlir: invalid IR: onnx.Relu has 2 results, at most 1 allowed
