// The verifier rejects a property of the wrong attribute kind.
// RUN: not dlhwc opt %s 2>&1 | filecheck %s

builtin.module {
  func.func @main(%x: tensor<2x2xf32>) -> tensor<2x2xf32> {
    %y = onnx.Gemm(%x, %x) {transB = "yes"} : (tensor<2x2xf32>, tensor<2x2xf32>) -> tensor<2x2xf32>
    func.return %y : tensor<2x2xf32>
  }
}

// CHECK: dlhwc: error: {{.*}}invalid-property-type.mlir: invalid IR: {{.*}}integer
