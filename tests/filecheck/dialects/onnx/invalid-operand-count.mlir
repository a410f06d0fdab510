// The parser rejects an operand list that does not match the operand types.
// RUN: not dlhwc opt %s 2>&1 | filecheck %s

builtin.module {
  func.func @main(%x: tensor<2xf32>) -> tensor<2xf32> {
    %a = onnx.Add(%x, %x) : (tensor<2xf32>) -> tensor<2xf32>
    func.return %a : tensor<2xf32>
  }
}

// CHECK: dlhwc: error: {{.*}}invalid-operand-count.mlir:6:29: 2 operands but 1 operand types
