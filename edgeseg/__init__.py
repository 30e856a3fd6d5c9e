"""edgeseg: semantic segmentation from training to the edge.

Train FCN, U-Net and DeepLab models in PyTorch, distill them into compact depthwise-separable
students, export to ONNX with a parity gate, quantize, and run the result with ONNX Runtime.
"""

__version__ = "0.1.0"
