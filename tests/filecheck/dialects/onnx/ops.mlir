// Print/parse round trip of the onnx dialect's custom format: operand lists, NoValue,
// multi-result ops, generic onnx.Node with a domain and attributes, locations.
// Print, parse the printed IR and print again: the output checked below, twice the same.
// RUN: dlhwc opt %s -o %t && dlhwc opt %t | filecheck %s
// RUN: dlhwc opt %t -o %t.again && diff %t %t.again

builtin.module {
  func.func @main(%x: tensor<?x2xf32> {onnx.name = "x", onnx.dim_params = ["N", ""]}, %s: tensor<?x?x2xf32>) -> (tensor<?x2xf32>, tensor<?x8xi64>) {
    %none = onnx.NoValue() : () -> none
    %w = onnx.Constant dense<[[1.0, 2.0], [3.0, 4.0]]> : tensor<2x2xf32> loc("w")
    %g = onnx.Gemm(%x, %w, %none) {transB = 1 : i64, alpha = 0.5 : f32} : (tensor<?x2xf32>, tensor<2x2xf32>, none) -> tensor<?x2xf32> loc("fc1")
    %t = onnx.Transpose(%s) {perm = array<i64: 1, 0, 2>} : (tensor<?x?x2xf32>) -> tensor<?x?x2xf32> loc("/rnn/Transpose")
    %lw = onnx.Constant dense<0.5> : tensor<1x4x2xf32> loc("lw")
    %lr = onnx.Constant dense<0.25> : tensor<1x4x1xf32> loc("lr")
    %y:3 = onnx.LSTM(%t, %lw, %lr, %none) {hidden_size = 1 : i64} : (tensor<?x?x2xf32>, tensor<1x4x2xf32>, tensor<1x4x1xf32>, none) -> (tensor<?x1x?x1xf32>, tensor<1x?x1xf32>, tensor<1x?x1xf32>) loc("/rnn/LSTM")
    %r = onnx.Relu(%x) : (tensor<?x2xf32>) -> tensor<?x2xf32>
    %n = onnx.Node(%r, %w) {op_type = "Custom", domain = "com.example", opset = 3 : i64, attrs = {axis = 1 : i64, mode = "fast"}} : (tensor<?x2xf32>, tensor<2x2xf32>) -> tensor<?x8xi64> loc("custom")
    func.return %g, %n : tensor<?x2xf32>, tensor<?x8xi64>
  }
}

// CHECK:      builtin.module {
// CHECK-NEXT:   func.func @main(%x: tensor<?x2xf32> {onnx.name = "x", onnx.dim_params = ["N", ""]}, %s: tensor<?x?x2xf32>) -> (tensor<?x2xf32>, tensor<?x8xi64>) {
// CHECK-NEXT:     %none = onnx.NoValue() : () -> none
// CHECK-NEXT:     %w = onnx.Constant dense<{{\[\[}}1.000000e+00, 2.000000e+00], [3.000000e+00, 4.000000e+00]]> : tensor<2x2xf32> loc("w")
// Properties print sorted by name.
// CHECK-NEXT:     %g = onnx.Gemm(%x, %w, %none) {alpha = 5.000000e-01 : f32, transB = 1 : i64} : (tensor<?x2xf32>, tensor<2x2xf32>, none) -> tensor<?x2xf32> loc("fc1")
// CHECK-NEXT:     %t = onnx.Transpose(%s) {perm = array<i64: 1, 0, 2>} : (tensor<?x?x2xf32>) -> tensor<?x?x2xf32> loc("/rnn/Transpose")
// CHECK-NEXT:     %lw = onnx.Constant dense<5.000000e-01> : tensor<1x4x2xf32> loc("lw")
// CHECK-NEXT:     %lr = onnx.Constant dense<2.500000e-01> : tensor<1x4x1xf32> loc("lr")
// CHECK-NEXT:     %y, %y_1, %y_2 = onnx.LSTM(%t, %lw, %lr, %none) {hidden_size = 1 : i64} : (tensor<?x?x2xf32>, tensor<1x4x2xf32>, tensor<1x4x1xf32>, none) -> (tensor<?x1x?x1xf32>, tensor<1x?x1xf32>, tensor<1x?x1xf32>) loc("/rnn/LSTM")
// An op without a node name prints no location.
// CHECK-NEXT:     %r = onnx.Relu(%x) : (tensor<?x2xf32>) -> tensor<?x2xf32>{{$}}
// CHECK-NEXT:     %n = onnx.Node(%r, %w) {attrs = {axis = 1 : i64, mode = "fast"}, domain = "com.example", op_type = "Custom", opset = 3 : i64} : (tensor<?x2xf32>, tensor<2x2xf32>) -> tensor<?x8xi64> loc("custom")
// CHECK-NEXT:     func.return %g, %n : tensor<?x2xf32>, tensor<?x8xi64>
// CHECK-NEXT:   }
// CHECK-NEXT: }
