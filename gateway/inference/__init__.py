"""What the camera lanes share (fire lanes, face access), so neither imports the other: the model
catalog (manifests, sha256), the one inference engine and its thread, box arithmetic, and the store
of evidence pictures. Imports numpy/onnxruntime only where a camera lane exists."""
