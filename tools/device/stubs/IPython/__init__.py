"Device-harness stand-in: stlpips_pytorch imports IPython.embed at import time and never calls it."
def embed(*args, **kwargs): raise RuntimeError('IPython is not carried to the device machine')
def get_ipython(): return None
version_info = (9, 0)  # matplotlib reads it when it finds IPython imported
