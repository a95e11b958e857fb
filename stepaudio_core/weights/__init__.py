"""Reading weight files safely, one place per format: torch state dicts and safetensors (``checkpoint``),
torch-exported ONNX graphs (``onnx_graph``), and the safetensors cache of converted files (``convert_cache``).

Every reader checks the file before reading it, names it in every error, and loads strictly.
"""
