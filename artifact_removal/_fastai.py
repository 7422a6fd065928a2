"""fastai, imported once without the FutureWarning its layers raise at import on this torch (`torch.jit.script`
is deprecated): users should not see library noise. The package's fastai modules import it first."""
import warnings

with warnings.catch_warnings():
    warnings.filterwarnings('ignore', message='`torch.jit.script` is deprecated', category=FutureWarning)
    import fastai.layers  # noqa: F401  (the module that calls torch.jit.script when imported)
