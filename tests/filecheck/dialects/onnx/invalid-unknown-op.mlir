// An operator without a dedicated op must be written as a generic onnx.Node.
// RUN: not dlhwc opt %s 2>&1 | filecheck %s

builtin.module {
  func.func @main(%x: tensor<2xf32>) -> tensor<2xf32> {
    %y = onnx.Frobnicate(%x) : (tensor<2xf32>) -> tensor<2xf32>
    func.return %y : tensor<2xf32>
  }
}

// CHECK: dlhwc: error: {{.*}}invalid-unknown-op.mlir:6:{{[0-9]+}}: Operation onnx.Frobnicate is not registered
