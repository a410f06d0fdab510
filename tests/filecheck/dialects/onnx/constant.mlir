// onnx.Constant: small constants print as dense literals (splats stay splats), larger
// ones are saved as hex (`-o`) and elided in terminal output.
// RUN: dlhwc opt %s | filecheck %s --check-prefix=ELIDED
// RUN: dlhwc opt %s -o %t && filecheck %s --check-prefix=FULL --input-file %t
// RUN: dlhwc opt %t -o %t.again && diff %t %t.again

builtin.module {
  func.func @main() -> (tensor<3xi64>, tensor<2x2xf32>, tensor<17xf32>, tensor<i64>, tensor<2xi1>, tensor<4xf32>) {
    %splat = onnx.Constant dense<0> : tensor<3xi64> loc("zeros")
    %small = onnx.Constant dense<[[1.0, -2.5], [3.0, 4.0]]> : tensor<2x2xf32> loc("small")
    %big = onnx.Constant dense<"0x000000000000803F0000004000004040000080400000A0400000C0400000E040000000410000104100002041000030410000404100005041000060410000704100008041"> : tensor<17xf32> loc("big")
    %scalar = onnx.Constant dense<-1> : tensor<i64>
    %flags = onnx.Constant dense<[true, false]> : tensor<2xi1>
    %hex_small = onnx.Constant dense<"0x0000803F000000400000404000008040"> : tensor<4xf32>
    func.return %splat, %small, %big, %scalar, %flags, %hex_small : tensor<3xi64>, tensor<2x2xf32>, tensor<17xf32>, tensor<i64>, tensor<2xi1>, tensor<4xf32>
  }
}

// ELIDED:      %splat = onnx.Constant dense<0> : tensor<3xi64> loc("zeros")
// ELIDED-NEXT: %small = onnx.Constant dense<{{\[\[}}1.000000e+00, -2.500000e+00], [3.000000e+00, 4.000000e+00]]> : tensor<2x2xf32> loc("small")
// ELIDED-NEXT: %big = onnx.Constant dense_resource<__elided__> : tensor<17xf32> loc("big")
// ELIDED-NEXT: %scalar = onnx.Constant dense<-1> : tensor<i64>{{$}}
// ELIDED-NEXT: %flags = onnx.Constant dense<[true, false]> : tensor<2xi1>
// A hex literal of at most 16 elements prints as a plain literal.
// ELIDED-NEXT: %hex_small = onnx.Constant dense<[1.000000e+00, 2.000000e+00, 3.000000e+00, 4.000000e+00]> : tensor<4xf32>

// FULL-NOT:  __elided__
// FULL:      %splat = onnx.Constant dense<0> : tensor<3xi64> loc("zeros")
// FULL-NEXT: %small = onnx.Constant dense<{{\[\[}}1.000000e+00, -2.500000e+00], [3.000000e+00, 4.000000e+00]]> : tensor<2x2xf32> loc("small")
// FULL-NEXT: %big = onnx.Constant dense<"0x000000000000803F0000004000004040000080400000A0400000C0400000E040000000410000104100002041000030410000404100005041000060410000704100008041"> : tensor<17xf32> loc("big")
// FULL-NOT:  __elided__
