// A generic onnx.Node needs its op type, domain and opset.
// RUN: not dlhwc opt %s 2>&1 | filecheck %s

builtin.module {
  func.func @main(%x: tensor<2xf32>) -> tensor<2xf32> {
    %y = onnx.Node(%x) {op_type = "Foo"} : (tensor<2xf32>) -> tensor<2xf32>
    func.return %y : tensor<2xf32>
  }
}

// CHECK: dlhwc: error: {{.*}}invalid-node-missing-domain.mlir: invalid IR: property 'domain' expected in operation 'onnx.Node'
