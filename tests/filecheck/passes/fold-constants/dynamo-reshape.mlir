// The dynamo exporter's patterns around a GRU:
// - the zero state `Slice(Expand(0.0, Concat([1], Shape(x, 0, 1), [16])), [0], [1], [0])`,
//   which the pass drops;
// - the reshape after it, whose target is computed from the Shape of the runtime tensor:
//   `Concat(Slice(s,0,1), Slice(s,1,2), Reshape(Mul(Slice(s,2,3), Slice(s,3,4)), [-1]))`;
//   it becomes the constant [8, 0, 16] (0 copies the symbolic batch dimension).
// RUN: dlhwc opt %s -p fold-constants | filecheck %s

builtin.module {
  func.func @main(%x: tensor<?x8x4xf32>, %w: tensor<1x48x4xf32>, %r: tensor<1x48x16xf32>) -> tensor<8x?x?xf32> {
    %zero = onnx.Constant dense<0.0> : tensor<f32> loc("val_2")
    %c0 = onnx.Constant dense<0> : tensor<1xi64> loc("val_10")
    %c1 = onnx.Constant dense<1> : tensor<1xi64> loc("val_4")
    %c2 = onnx.Constant dense<2> : tensor<1xi64> loc("val_51")
    %c3 = onnx.Constant dense<3> : tensor<1xi64> loc("val_53")
    %c4 = onnx.Constant dense<4> : tensor<1xi64> loc("val_55")
    %c16 = onnx.Constant dense<16> : tensor<1xi64> loc("val_6")
    %cm1 = onnx.Constant dense<-1> : tensor<1xi64> loc("val_58")
    %batch = onnx.Shape(%x) {end = 1 : i64, start = 0 : i64} : (tensor<?x8x4xf32>) -> tensor<1xi64> loc("node_Shape_0")
    %dims = onnx.Concat(%c1, %batch, %c16) {axis = 0 : i64} : (tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<3xi64> loc("node_Concat_7")
    %zeros = onnx.Expand(%zero, %dims) : (tensor<f32>, tensor<3xi64>) -> tensor<1x?x16xf32> loc("node_zeros")
    %h0 = onnx.Slice(%zeros, %c0, %c1, %c0) : (tensor<1x?x16xf32>, tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<1x?x16xf32> loc("node_Slice_12")
    %xt = onnx.Transpose(%x) {perm = array<i64: 1, 0, 2>} : (tensor<?x8x4xf32>) -> tensor<8x?x4xf32> loc("node_Transpose_8")
    %none = onnx.NoValue() : () -> none
    %y = onnx.GRU(%xt, %w, %r, %none, %none, %h0) {hidden_size = 16 : i64, linear_before_reset = 1 : i64} : (tensor<8x?x4xf32>, tensor<1x48x4xf32>, tensor<1x48x16xf32>, none, none, tensor<1x?x16xf32>) -> tensor<8x1x?x16xf32> loc("node_GRU_47")
    %yt = onnx.Transpose(%y) {perm = array<i64: 0, 2, 1, 3>} : (tensor<8x1x?x16xf32>) -> tensor<8x?x1x16xf32> loc("node_Transpose_49")
    %s = onnx.Shape(%yt) {start = 0 : i64} : (tensor<8x?x1x16xf32>) -> tensor<4xi64> loc("node_Shape_50")
    %s0 = onnx.Slice(%s, %c0, %c1) : (tensor<4xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<1xi64> loc("node_Slice_51")
    %s1 = onnx.Slice(%s, %c1, %c2) : (tensor<4xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<1xi64> loc("node_Slice_53")
    %s2 = onnx.Slice(%s, %c2, %c3) : (tensor<4xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<1xi64> loc("node_Slice_55")
    %s3 = onnx.Slice(%s, %c3, %c4) : (tensor<4xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<1xi64> loc("node_Slice_57")
    %prod = onnx.Mul(%s2, %s3) : (tensor<1xi64>, tensor<1xi64>) -> tensor<1xi64> loc("node_Mul_58")
    %flat = onnx.Reshape(%prod, %cm1) {allowzero = 0 : i64} : (tensor<1xi64>, tensor<1xi64>) -> tensor<1xi64> loc("node_Reshape_60")
    %target = onnx.Concat(%s0, %s1, %flat) {axis = 0 : i64} : (tensor<1xi64>, tensor<1xi64>, tensor<1xi64>) -> tensor<3xi64> loc("node_Concat_61")
    %out = onnx.Reshape(%yt, %target) {allowzero = 0 : i64} : (tensor<8x?x1x16xf32>, tensor<3xi64>) -> tensor<8x?x?xf32> loc("node_Reshape_61")
    func.return %out : tensor<8x?x?xf32>
  }
}

// CHECK-LABEL: func.func @main
// CHECK-NOT:   onnx.Shape
// CHECK-NOT:   onnx.Expand
// CHECK:       %y = onnx.GRU(%xt, %w, %r) {hidden_size = 16 : i64, linear_before_reset = 1 : i64}
// CHECK-NEXT:  %yt = onnx.Transpose(%y)
// CHECK-NEXT:  %[[TARGET:.*]] = onnx.Constant dense<[8, 0, 16]> : tensor<3xi64>
// CHECK-NEXT:  %out = onnx.Reshape(%yt, %[[TARGET]]) {allowzero = 0 : i64} : (tensor<8x?x1x16xf32>, tensor<3xi64>) -> tensor<8x?x?xf32> loc("node_Reshape_61")
// CHECK-NEXT:  func.return %out
// CHECK-NOT:   onnx.Shape
// CHECK-NOT:   onnx.Slice
// CHECK-NOT:   onnx.Concat
// CHECK-NOT:   onnx.Mul
