"""Viewer stage: pygame replay of recorded episodes, world-model dreams beside reality, driving in the dream."""

import os

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")  # before any viewer module imports pygame
