"""Viewer stage: recorded episodes (library, filter by event) and the replay player state machine.

Pure logic, no pygame: the window (``drivesim.viewer.app``) and the exporter drive a ``ReplayPlayer`` with
``handle(command)`` and ``advance(dt_s)``.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from drivesim import spec
from drivesim.data.episode import EVENT_THRESHOLD, META_FILE, EpisodeReader, list_episodes

logger = logging.getLogger(__name__)

EVENT_KINDS = ("collision", "off_road", "lane_invasion")
EVENT_ALIASES = {"off-road": "off_road", "offroad": "off_road", "lane-invasion": "lane_invasion", "lane": "lane_invasion"}
PLAYBACK_SPEEDS = (0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
DEFAULT_DT_S = 0.05
SPEED_INDEX = spec.MEASUREMENT_NAMES.index("speed_mps")


def event_name(name: str) -> str:
    """Canonical event name (``collision``, ``off_road``, ``lane_invasion``) of a user-typed one."""
    canonical = EVENT_ALIASES.get(name.lower(), name.lower())
    if canonical not in EVENT_KINDS:
        raise ValueError(f"unknown event {name!r}; choose from {', '.join(EVENT_KINDS)}")
    return canonical


def find_episodes(data: str | Path) -> list[Path]:
    """Episode folders under ``data``: an episode folder itself, a dataset folder, or a run folder one level up.

    Evaluation runs keep their recorded episodes in a sub-folder (``RUN/episodes``), which is found too.
    """
    data = Path(data)
    if (data / META_FILE).is_file():
        return [data]
    episodes = list_episodes(data)
    if episodes or not data.is_dir():
        return episodes
    for child in sorted(entry for entry in data.iterdir() if entry.is_dir()):
        episodes.extend(list_episodes(child))
    return episodes


def episode_id(path: Path) -> int:
    """Index of an episode folder ``ep_<index>`` (-1 for other names)."""
    _, _, digits = path.name.partition("ep_")
    return int(digits) if digits.isdigit() else -1


@dataclass
class Episode:
    """One episode loaded in memory (decoded fields, time axis first)."""

    path: Path
    meta: dict[str, Any]
    fields: dict[str, np.ndarray]

    @classmethod
    def load(cls, path: str | Path) -> Episode:
        reader = EpisodeReader(path)
        return cls(Path(path), reader.meta, reader.read_all())

    @property
    def length(self) -> int:
        return int(self.fields["reward"].shape[0])

    @property
    def dt_s(self) -> float:
        return float(self.meta.get("dt_s") or DEFAULT_DT_S)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def sensors(self) -> tuple[str, ...]:
        """Sensor fields present (``camera`` and/or ``bev``)."""
        return tuple(key for key in (spec.OBS_CAMERA, spec.OBS_BEV) if key in self.fields)

    def event_values(self, name: str) -> np.ndarray:
        """Per-step values (T,) of an event of ``drivesim.spec.EVENT_NAMES``."""
        return self.fields["events"][:, spec.EVENT_NAMES.index(name)]

    def event_steps(self, name: str) -> np.ndarray:
        """Steps where event ``name`` happens (value above the dataset's event threshold)."""
        return np.flatnonzero(self.event_values(event_name(name)) > EVENT_THRESHOLD)

    def frame(self, step: int) -> dict[str, np.ndarray]:
        """Row ``step`` of every field (sensors, measurements, events, action, ...)."""
        return {key: value[step] for key, value in self.fields.items()}

    @property
    def speed_series(self) -> np.ndarray:
        """Speed (T,) [m/s]."""
        return self.fields["measurements"][:, SPEED_INDEX]


class EpisodeLibrary:
    """The episodes of a dataset, optionally only those with an event, loaded on demand (small LRU cache).

    Args:
        data: dataset, run or episode folder (see ``find_episodes``).
        event_filter: keep only episodes where this event happens (``collision``, ``off_road``, ...).
        cache_size: episodes kept in memory.

    Raises:
        FileNotFoundError: no (matching) episode.
    """

    def __init__(self, data: str | Path, event_filter: str | None = None, cache_size: int = 3) -> None:
        self.data = Path(data)
        paths = find_episodes(self.data)
        if not paths:
            raise FileNotFoundError(f"no episodes in {self.data}")
        self.event_filter = event_name(event_filter) if event_filter else None
        if self.event_filter:
            paths = [path for path in paths if self._has_event(path, self.event_filter)]
            if not paths:
                raise FileNotFoundError(f"no episode in {self.data} has a {self.event_filter} event")
        self.paths = paths
        self._cache: OrderedDict[Path, Episode] = OrderedDict()
        self._cache_size = cache_size

    @staticmethod
    def _has_event(path: Path, name: str) -> bool:
        events = EpisodeReader(path).read("events")
        return bool((events[:, spec.EVENT_NAMES.index(name)] > EVENT_THRESHOLD).any())

    def __len__(self) -> int:
        return len(self.paths)

    def position(self, identifier: int) -> int:
        """List position of the episode with index ``identifier`` (``ep_<identifier>``)."""
        for position, path in enumerate(self.paths):
            if episode_id(path) == identifier:
                return position
        known = [episode_id(path) for path in self.paths]
        raise KeyError(f"episode {identifier} is not in {self.data} (filtered: {self.event_filter}); known: {known}")

    def __getitem__(self, position: int) -> Episode:
        path = self.paths[position]
        episode = self._cache.pop(path, None) or Episode.load(path)
        self._cache[path] = episode
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return episode


class ReplayPlayer:
    """Play/pause, step, seek, playback speed, episode switching and event jumps over an ``EpisodeLibrary``.

    Time advances in simulated seconds: ``advance(dt_s)`` moves ``speed x dt_s`` of episode time while playing.
    Commands (``handle``): ``toggle_play``, ``step_forward``, ``step_back``, ``faster``, ``slower``,
    ``prev_episode``, ``next_episode``, ``home``, ``end``, ``next_collision``, ``next_off_road``,
    ``next_lane_invasion``.

    Args:
        library: the episodes.
        position: starting episode (list position).
        playing: start playing.
    """

    def __init__(self, library: EpisodeLibrary, position: int = 0, playing: bool = True) -> None:
        self.library = library
        self.position = position
        self.step = 0
        self.playing = playing
        self.speed_index = PLAYBACK_SPEEDS.index(1.0)
        self._clock_s = 0.0
        self.message: str | None = None

    @property
    def episode(self) -> Episode:
        return self.library[self.position]

    @property
    def speed(self) -> float:
        """Playback speed factor (1 = real time)."""
        return PLAYBACK_SPEEDS[self.speed_index]

    def seek(self, step: int) -> None:
        """Go to ``step`` (clipped to the episode)."""
        self.step = int(np.clip(step, 0, self.episode.length - 1))
        self._clock_s = 0.0

    def select(self, position: int) -> None:
        """Switch to the episode at list ``position`` (wraps around) and rewind."""
        self.position = position % len(self.library)
        self.seek(0)

    def advance(self, dt_s: float) -> bool:
        """Let ``dt_s`` of wall time pass; returns whether the frame changed. Stops at the episode's end."""
        if not self.playing:
            return False
        self._clock_s += dt_s * self.speed
        frames = int(self._clock_s / self.episode.dt_s)
        if frames == 0:
            return False
        self._clock_s -= frames * self.episode.dt_s
        before = self.step
        self.seek(self.step + frames)
        if self.step == self.episode.length - 1:
            self.playing = False
        return self.step != before

    def next_event(self, name: str) -> bool:
        """Jump to the next step with event ``name``, searching later episodes (wrapping); False if none."""
        name = event_name(name)
        count = len(self.library)
        for offset in range(count + 1):
            position = (self.position + offset) % count
            steps = self.library[position].event_steps(name)
            if offset == 0:
                steps = steps[steps > self.step]
            elif offset == count:
                steps = steps[steps <= self.step]
            if steps.size:
                if position != self.position:
                    self.select(position)
                self.seek(int(steps[0]))
                self.playing = False
                self.message = f"{name} at step {self.step} of {self.episode.name}"
                return True
        self.message = f"no {name} event in these episodes"
        return False

    def handle(self, command: str) -> bool:
        """Apply a command; returns whether the player knew it."""
        actions = {
            "toggle_play": self._toggle_play,
            "step_forward": lambda: self._step_by(1),
            "step_back": lambda: self._step_by(-1),
            "faster": lambda: self._change_speed(1),
            "slower": lambda: self._change_speed(-1),
            "prev_episode": lambda: self.select(self.position - 1),
            "next_episode": lambda: self.select(self.position + 1),
            "home": lambda: self.seek(0),
            "end": lambda: self.seek(self.episode.length - 1),
        }
        if command in actions:
            actions[command]()
            return True
        if command.startswith("next_") and command[len("next_") :] in EVENT_KINDS:
            self.next_event(command[len("next_") :])
            return True
        return False

    def _toggle_play(self) -> None:
        if not self.playing and self.step == self.episode.length - 1:
            self.seek(0)  # play again from the start
        self.playing = not self.playing

    def _step_by(self, steps: int) -> None:
        self.playing = False
        self.seek(self.step + steps)

    def _change_speed(self, delta: int) -> None:
        self.speed_index = int(np.clip(self.speed_index + delta, 0, len(PLAYBACK_SPEEDS) - 1))
        self.message = f"playback x{self.speed:g}"
