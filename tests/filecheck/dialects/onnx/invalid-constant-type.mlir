// The verifier rejects an onnx.Constant whose result type differs from its value's.
// RUN: not dlhwc opt %s 2>&1 | filecheck %s

builtin.module {
  func.func @main() -> tensor<3xf32> {
    %c = "onnx.Constant"() <{value = dense<1.0> : tensor<2xf32>}> : () -> tensor<3xf32>
    func.return %c : tensor<3xf32>
  }
}

// CHECK: dlhwc: error: {{.*}}invalid-constant-type.mlir: invalid IR: onnx.Constant result type tensor<3xf32> differs from its value's type tensor<2xf32>
