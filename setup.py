from pathlib import Path
from setuptools import find_packages, setup

EXTRAS = {
    'onnx': ['onnx', 'onnxruntime', 'onnxscript'],  # the faster CPU backend, ONNX export, the browser page
    'video': ['av>=18'],
    # training and evaluation: ST-LPIPS ships trained shift-tolerant LPIPS weights (works offline; its imports need
    # torchsummary, IPython and scikit-image), the KAIR protocol reads and compresses with OpenCV
    'train': ['lpips', 'stlpips-pytorch', 'torchsummary', 'ipython', 'scikit-image', 'pytorch-msssim',
              'opencv-python-headless'],
    'distributed': ['accelerate', 'ray[data]>=2.60'],  # several GPUs (accelerate); archives on Ray (the tested version)
    'notebooks': ['jupyterlab', 'ipykernel'],
}
EXTRAS['all'] = sorted({d for k, deps in EXTRAS.items() if k != 'notebooks' for d in deps})
EXTRAS['test'] = EXTRAS['all'] + ['pytest', 'hypothesis', 'nbclient', 'ipykernel', 'nbformat', 'playwright']

setup(
    name='artifact_removal',
    version='0.1.0',
    description='Remove JPEG compression artifacts with a fast MobileNetV3 U-Net trained by the NoGAN recipe (fastai)',
    long_description=Path('README.md').read_text(encoding='utf-8'),
    long_description_content_type='text/markdown',
    # the top-level models/ folder (weights + registry.json) ships inside the package as artifact_removal/bundled
    packages=find_packages(include=['artifact_removal', 'artifact_removal.*']) + ['artifact_removal.bundled'],
    package_dir={'artifact_removal.bundled': 'models'},
    # the page and its onnxruntime-web build (`npm run build` in web/ copies it) ship too: `serve` needs no Node
    package_data={'artifact_removal.bundled': ['*.safetensors', 'registry.json'],
                  'artifact_removal': ['web/*.html', 'web/*.css', 'web/src/*.js', 'web/vendor/*']},
    python_requires='>=3.10',
    # the core restores images (PyTorch; the model is fastai's DynamicUnet on a timm encoder); the rest is extras
    install_requires=['torch>=2.1', 'torchvision', 'fastai>=2.7.14', 'timm>=0.9', 'pillow>=9', 'numpy', 'safetensors',
                      'matplotlib', 'psutil'],
    extras_require=EXTRAS,
    entry_points={'console_scripts': ['artifact-removal=artifact_removal.cli:main']},
)
