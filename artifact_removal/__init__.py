"""artifact_removal: remove JPEG compression artifacts with a fast MobileNetV3 U-Net trained by the NoGAN recipe.

The user API is here and loads when first used, so `import artifact_removal` is instant:

    from artifact_removal import restore_image, Restorer, restore_video

Training and extending (fastai DataBlocks, Learners, the NoGAN stages) comes from `artifact_removal.train`.
"""
import importlib

__version__ = '0.1.0'

_API = {'restore_image': 'restore', 'Restorer': 'restore', 'get_transformed_image': 'restore',
        'plot_transformed_image': 'restore', 'restore_video': 'video', 'list_models': 'registry',
        'download_model': 'registry', 'ModelDownloadError': 'registry', 'load_model': 'weights',
        'export_onnx': 'export', 'ImageReadError': 'image_io'}
__all__ = list(_API)


def __getattr__(name):
    if name not in _API: raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
    return getattr(importlib.import_module(f'.{_API[name]}', __name__), name)


def __dir__(): return sorted(list(globals()) + __all__)
