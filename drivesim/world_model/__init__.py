"""World model stage: a DreamerV3-style RSSM for driving, trained with Lightning (no carla, no pygame).

Public API: ``WorldModelConfig``, ``WorldModel`` (``observe``, ``img_step``, ``imagine``, ``feature_size``),
``LatentState``, ``Imagination`` and ``load_world_model``. Lightning lives in ``lightning_module`` and
``train`` and is imported only by them.
"""

from drivesim.world_model.config import WorldModelConfig
from drivesim.world_model.model import Imagination, WorldModel, load_world_model
from drivesim.world_model.rssm import LatentState, Policy

__all__ = ["Imagination", "LatentState", "Policy", "WorldModel", "WorldModelConfig", "load_world_model"]
