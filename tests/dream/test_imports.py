"""The dream stage imports neither carla, pygame nor cv2, and none of the stages that import it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_dream_package_imports_only_lower_stages() -> None:
    code = (
        "import json, sys\n"
        "import drivesim.dream.sim, drivesim.dream.rollout, drivesim.dream.episode, drivesim.dream.bench\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    modules = json.loads(result.stdout.strip().splitlines()[-1])
    assert not [name for name in modules if name.split(".")[0] in ("carla", "pygame", "cv2")]
    assert not [name for name in modules if name.startswith(("drivesim.policy", "drivesim.eval", "drivesim.viewer"))]
