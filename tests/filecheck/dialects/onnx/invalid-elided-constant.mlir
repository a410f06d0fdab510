// A dump with elided constants cannot be read back.
// RUN: not dlhwc opt %s 2>&1 | filecheck %s

builtin.module {
  func.func @main() -> tensor<64xf32> {
    %w = onnx.Constant dense_resource<__elided__> : tensor<64xf32> loc("w")
    func.return %w : tensor<64xf32>
  }
}

// CHECK: dlhwc: error: {{.*}}invalid-elided-constant.mlir:6:24: this constant was elided when the IR was printed; a dump with elided weights cannot be read back
