// Ops whose inputs are all constants become constants (named after the folded op);
// `max-elements` bounds the size of a folded result; Identity and inference Dropout
// are bypassed; ops without uses are deleted; Shape of a static tensor is a constant.
// RUN: dlhwc opt %s -p fold-constants | filecheck %s
// RUN: dlhwc opt %s -p 'fold-constants{max-elements=2}' | filecheck %s --check-prefix=LIMIT

builtin.module {
  func.func @main(%x: tensor<?x4xf32>) -> (tensor<?x4xf32>, tensor<2xi64>) {
    %a = onnx.Constant dense<[1.0, 2.0, 3.0, 4.0]> : tensor<4xf32> loc("a")
    %b = onnx.Constant dense<0.5> : tensor<4xf32> loc("b")
    %sum = onnx.Add(%a, %b) : (tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32> loc("sum")
    %scaled = onnx.Mul(%sum, %b) : (tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32> loc("scaled")
    %id = onnx.Identity(%scaled) : (tensor<4xf32>) -> tensor<4xf32> loc("identity")
    %d = onnx.Dropout(%x) : (tensor<?x4xf32>) -> tensor<?x4xf32> loc("dropout")
    %y = onnx.Add(%d, %id) : (tensor<?x4xf32>, tensor<4xf32>) -> tensor<?x4xf32> loc("add")
    %unused = onnx.Relu(%x) : (tensor<?x4xf32>) -> tensor<?x4xf32> loc("unused")
    %w = onnx.Constant dense<1.0> : tensor<3x5xf32> loc("w")
    %shape = onnx.Shape(%w) : (tensor<3x5xf32>) -> tensor<2xi64> loc("shape")
    func.return %y, %shape : tensor<?x4xf32>, tensor<2xi64>
  }
}

// CHECK-LABEL: func.func @main
// CHECK-NEXT:    %scaled = onnx.Constant dense<[7.500000e-01, 1.250000e+00, 1.750000e+00, 2.250000e+00]> : tensor<4xf32> loc("scaled")
// CHECK-NEXT:    %y = onnx.Add(%x, %scaled) : (tensor<?x4xf32>, tensor<4xf32>) -> tensor<?x4xf32> loc("add")
// CHECK-NEXT:    %shape = onnx.Constant dense<[3, 5]> : tensor<2xi64> loc("shape")
// CHECK-NEXT:    func.return %y, %shape : tensor<?x4xf32>, tensor<2xi64>
// CHECK-NEXT:  }

// LIMIT-LABEL: func.func @main
// LIMIT:         %sum = onnx.Add(%a, %b)
// LIMIT-NEXT:    %scaled = onnx.Mul(%sum, %b)
// LIMIT-NEXT:    %y = onnx.Add(%x, %scaled)
// LIMIT-NEXT:    %shape = onnx.Constant dense<[3, 5]> : tensor<2xi64> loc("shape")
