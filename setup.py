from pathlib import Path
from setuptools import find_packages, setup

setup(
    name='artifact_removal',
    version='0.1.0',
    description='Remove JPEG compression artifacts with a fast MobileNetV3 U-Net trained by the NoGAN recipe (fastai)',
    long_description=Path('README.md').read_text(encoding='utf-8'),
    long_description_content_type='text/markdown',
    # the top-level models/ folder (weights + registry.json) ships inside the package as artifact_removal/bundled
    packages=find_packages(include=['artifact_removal', 'artifact_removal.*']) + ['artifact_removal.bundled'],
    package_dir={'artifact_removal.bundled': 'models'},
    package_data={'artifact_removal.bundled': ['*.safetensors', 'registry.json']},
    python_requires='>=3.10',
    install_requires=[
        'torch>=2.1', 'torchvision', 'fastai>=2.7.14', 'timm>=0.9', 'lpips', 'pillow>=9', 'matplotlib',
        'numpy', 'opencv-python-headless', 'pytorch-msssim', 'safetensors', 'av>=18', 'onnx', 'onnxruntime',
        'onnxscript',
        # ST-LPIPS ships trained shift-tolerant LPIPS weights (works offline); its own imports need these
        'stlpips-pytorch', 'torchsummary', 'ipython', 'scikit-image',
    ],
    extras_require={'test': ['pytest', 'nbclient', 'ipykernel', 'nbformat', 'accelerate'],
                    'distributed': ['accelerate']},
    entry_points={'console_scripts': ['artifact-removal=artifact_removal.cli:main']},
)
