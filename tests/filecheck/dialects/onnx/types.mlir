// Types of onnx values: symbolic dimensions `?`, unranked tensors, `none` for an
// omitted input, and non-tensor ONNX types as !onnx.opaque; symbolic dimension names
// and ONNX value names live in argument and result attributes.
// RUN: dlhwc opt %s | filecheck %s

builtin.module attributes {onnx.opset_import = {ai.onnx = 17 : i64, ai.onnx.ml = 3 : i64}, onnx.ir_version = 8 : i64} {
  func.func @main(%x: tensor<?x?x64xf32> {onnx.name = "x", onnx.dim_params = ["batch", "seq", ""]}) -> (tensor<*xf32> {onnx.name = "y"}, !onnx.opaque<"seq(tensor(float))"> {onnx.name = "z"}) {
    %u = onnx.Relu(%x) : (tensor<?x?x64xf32>) -> tensor<*xf32> loc("relu")
    %z = onnx.Node(%u) {op_type = "SequenceConstruct", domain = "", opset = 17 : i64} : (tensor<*xf32>) -> !onnx.opaque<"seq(tensor(float))"> loc("seq")
    func.return %u, %z : tensor<*xf32>, !onnx.opaque<"seq(tensor(float))">
  }
}

// CHECK: builtin.module attributes {onnx.opset_import = {ai.onnx = 17 : i64, ai.onnx.ml = 3 : i64}, onnx.ir_version = 8 : i64} {
// CHECK-NEXT: func.func @main(%x: tensor<?x?x64xf32> {onnx.name = "x", onnx.dim_params = ["batch", "seq", ""]}) -> (tensor<*xf32> {onnx.name = "y"}, !onnx.opaque<"seq(tensor(float))"> {onnx.name = "z"}) {
// CHECK-NEXT: %u = onnx.Relu(%x) : (tensor<?x?x64xf32>) -> tensor<*xf32> loc("relu")
// CHECK-NEXT: %z = onnx.Node(%u) {domain = "", op_type = "SequenceConstruct", opset = 17 : i64} : (tensor<*xf32>) -> !onnx.opaque<"seq(tensor(float))"> loc("seq")
