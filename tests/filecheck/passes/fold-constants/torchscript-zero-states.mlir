// The TorchScript exporter's zero initial state of an LSTM:
//   ConstantOfShape(Concat([1], Unsqueeze(Gather(Shape(x), 0), [0]), [16]))
// fed to initial_h and initial_c. ONNX defines an omitted state as zero, so the pass
// drops both operands (trailing no-values are removed) and the shape arithmetic dies.
// RUN: dlhwc opt %s -p fold-constants | filecheck %s

builtin.module {
  func.func @main(%x: tensor<8x?x4xf32>, %w: tensor<1x64x4xf32>, %r: tensor<1x64x16xf32>) -> tensor<8x1x?x16xf32> {
    %shape = onnx.Shape(%x) : (tensor<8x?x4xf32>) -> tensor<3xi64> loc("/rnn/Shape")
    %one = onnx.Constant dense<1> : tensor<i64> loc("/rnn/Constant")
    %batch = onnx.Gather(%shape, %one) {axis = 0 : i64} : (tensor<3xi64>, tensor<i64>) -> tensor<i64> loc("/rnn/Gather")
    %layers = onnx.Constant dense<1> : tensor<1xi64> loc("/rnn/Constant_1")
    %axes = onnx.Constant dense<0> : tensor<1xi64> loc("Constant_10")
    %batch1 = onnx.Unsqueeze(%batch, %axes) : (tensor<i64>, tensor<1xi64>) -> tensor<1xi64> loc("/rnn/Unsqueeze")
    %hidden = onnx.Constant dense<16> : tensor<1xi64> loc("/rnn/Constant_2")
    %dims = onnx.Concat(%layers, %batch1, %hidden) {axis = 0 : i64} : (tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<3xi64> loc("/rnn/Concat")
    %zeros = onnx.ConstantOfShape(%dims) {value = dense<0.0> : tensor<1xf32>} : (tensor<3xi64>) -> tensor<1x?x16xf32> loc("/rnn/ConstantOfShape")
    %none = onnx.NoValue() : () -> none
    %y, %yh, %yc = onnx.LSTM(%x, %w, %r, %none, %none, %zeros, %zeros) {hidden_size = 16 : i64} : (tensor<8x?x4xf32>, tensor<1x64x4xf32>, tensor<1x64x16xf32>, none, none, tensor<1x?x16xf32>, tensor<1x?x16xf32>) -> (tensor<8x1x?x16xf32>, tensor<1x?x16xf32>, tensor<1x?x16xf32>) loc("/rnn/LSTM")
    func.return %y : tensor<8x1x?x16xf32>
  }
}

// CHECK:      func.func @main(%x: tensor<8x?x4xf32>, %w: tensor<1x64x4xf32>, %r: tensor<1x64x16xf32>) -> tensor<8x1x?x16xf32> {
// CHECK-NEXT:   %y, %yh, %yc = onnx.LSTM(%x, %w, %r) {hidden_size = 16 : i64} : (tensor<8x?x4xf32>, tensor<1x64x4xf32>, tensor<1x64x16xf32>) -> (tensor<8x1x?x16xf32>, tensor<1x?x16xf32>, tensor<1x?x16xf32>) loc("/rnn/LSTM")
// CHECK-NEXT:   func.return %y : tensor<8x1x?x16xf32>
// CHECK-NEXT: }
