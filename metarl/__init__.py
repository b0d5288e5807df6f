"""metarl: Model-Agnostic Meta-Learning (MAML-TRPO) on fast batched MuJoCo task environments."""

from metarl.baseline import LinearFeatureBaseline
from metarl.config import TrainConfig, load_config
from metarl.maml import MAMLSettings, MAMLTRPO
from metarl.policy import GaussianMLPPolicy
from metarl.sampler import Sampler

__version__ = "0.1.0"
__all__ = ["GaussianMLPPolicy", "LinearFeatureBaseline", "MAMLSettings", "MAMLTRPO", "Sampler", "TrainConfig", "load_config"]
