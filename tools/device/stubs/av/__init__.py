"Device-harness stand-in: PyAV is not carried to the GPU machine (video is not trained there)."
