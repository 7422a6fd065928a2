"""Everything to train and extend the models, the fastai way: `from artifact_removal.train import *`.

Degradations, DataBlocks, generators and critics, losses, callbacks, Learners, the NoGAN stages, metrics and
the validation scorer, one import away (heavy: it loads fastai's vision and GAN code).
"""
from .callbacks import *  # noqa: F401,F403
from .config import *  # noqa: F401,F403
from .data import *  # noqa: F401,F403
from .degrade import *  # noqa: F401,F403
from .evaluate import *  # noqa: F401,F403
from .learner import *  # noqa: F401,F403
from .losses import *  # noqa: F401,F403
from .metrics import *  # noqa: F401,F403
from .models import *  # noqa: F401,F403
from .nogan import *  # noqa: F401,F403
from .weights import *  # noqa: F401,F403
