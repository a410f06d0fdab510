// Every kind of ONNX attribute as an op property, on dedicated ops and inside the
// `attrs` dictionary of a generic onnx.Node: INT, FLOAT, STRING, INTS, FLOATS, STRINGS,
// TENSOR, and an attribute kept as serialized proto.
// RUN: dlhwc opt %s | filecheck %s
// RUN: dlhwc opt %s -o %t && dlhwc opt %t -o %t.again && diff %t %t.again

builtin.module {
  func.func @main(%x: tensor<8x?x4xf32>, %w: tensor<1x64x4xf32>, %r: tensor<1x64x16xf32>, %shape: tensor<3xi64>) -> (tensor<8x1x?x16xf32>, tensor<4x8x?xf32>, tensor<2x2x2xf32>, tensor<8x?x4xf32>) {
    %y = onnx.LSTM(%x, %w, %r) {activation_alpha = array<f32: 1.0, 0.25, 0.5>, activations = ["Sigmoid", "Tanh", "Tanh"], clip = 3.0 : f32, direction = "forward", hidden_size = 16 : i64} : (tensor<8x?x4xf32>, tensor<1x64x4xf32>, tensor<1x64x16xf32>) -> tensor<8x1x?x16xf32> loc("lstm")
    %t = onnx.Transpose(%x) {perm = array<i64: 2, 0, 1>} : (tensor<8x?x4xf32>) -> tensor<4x8x?xf32> loc("transpose")
    %f = onnx.ConstantOfShape(%shape) {value = dense<1.5> : tensor<1xf32>} : (tensor<3xi64>) -> tensor<2x2x2xf32> loc("fill")
    %n = onnx.Node(%x) {op_type = "Custom", domain = "com.example", opset = 1 : i64, attrs = {i = -3 : i64, f = 0.125 : f32, s = "text", ints = array<i64: 1, -1>, floats = array<f32: 2.5>, strings = ["a", "b c"], t = dense<[1, 2]> : tensor<2xi32>, g = #onnx.proto<"0a0167">}} : (tensor<8x?x4xf32>) -> tensor<8x?x4xf32> loc("custom")
    func.return %y, %t, %f, %n : tensor<8x1x?x16xf32>, tensor<4x8x?xf32>, tensor<2x2x2xf32>, tensor<8x?x4xf32>
  }
}

// CHECK: onnx.LSTM(%x, %w, %r)
// CHECK-SAME: {activation_alpha = array<f32: 1.000000e+00, 2.500000e-01, 5.000000e-01>,
// CHECK-SAME: activations = ["Sigmoid", "Tanh", "Tanh"],
// CHECK-SAME: clip = 3.000000e+00 : f32,
// CHECK-SAME: direction = "forward",
// CHECK-SAME: hidden_size = 16 : i64}
// CHECK-SAME: loc("lstm")
// CHECK: onnx.Transpose(%x) {perm = array<i64: 2, 0, 1>}
// CHECK: onnx.ConstantOfShape(%shape) {value = dense<1.500000e+00> : tensor<1xf32>}
// CHECK: onnx.Node(%x) {attrs = {
// CHECK-SAME: i = -3 : i64,
// CHECK-SAME: f = 1.250000e-01 : f32,
// CHECK-SAME: s = "text",
// CHECK-SAME: ints = array<i64: 1, -1>,
// CHECK-SAME: floats = array<f32: 2.500000e+00>,
// CHECK-SAME: strings = ["a", "b c"],
// CHECK-SAME: t = dense<[1, 2]> : tensor<2xi32>,
// CHECK-SAME: g = #onnx.proto<"0a0167">},
// CHECK-SAME: domain = "com.example", op_type = "Custom", opset = 1 : i64}
