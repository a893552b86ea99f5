"""World model stage: reading an open-loop evaluation report (text lines, key figures, plots, sample GIF).

The report is what ``drivesim.world_model.evaluate.evaluate_open_loop`` returns and writes as
``report.json``; ``drivesim eval-wm``, ``drivesim demo`` and the notebooks print it with these helpers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from drivesim.world_model.visualize import frames_to_rgb

SUMMARY_CHANNELS = ("vehicles", "walkers", "traffic_light_red", "drivable")  # BEV channels in the summary
EVENT_LABELS = {"mode": "model (mode)", "sample": "model (sample)", "speed_distance": "speed-distance"}


def _fmt(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def camera_line(entry: dict[str, Any]) -> str:
    """``PSNR mode / sample / posterior (copy-last)`` and SSIM of one horizon's camera entry."""
    psnr = " / ".join(f"{entry[p]['psnr']:.2f}" for p in ("mode", "sample", "posterior"))
    ssim = " / ".join(f"{entry[p]['ssim']:.3f}" for p in ("mode", "sample", "posterior"))
    return (
        f"PSNR {psnr} dB (copy-last {entry['copy_last']['psnr']:.2f}); "
        f"SSIM {ssim} (copy-last {entry['copy_last']['ssim']:.3f})  [mode / sample / posterior]"
    )


def bev_line(name: str, entry: dict[str, Any]) -> str:
    """F1 at 0.5 and at the best threshold of one BEV channel for every predictor of one horizon."""
    if not entry["mode"].get("positives"):
        return f"{name}: no true pixels at this horizon"
    parts = []
    for predictor, label in (
        ("mode", "mode"),
        ("sample", "sample"),
        ("posterior", "posterior"),
        ("constant_position", "const-pos"),
        ("constant_velocity", "const-vel"),
    ):
        scores = entry[predictor]
        parts.append(f"{label} {scores['f1']:.3f}/{scores['f1_best']:.3f}@{scores['threshold_best']:g}")
    return f"{name} F1 at 0.5 / best@threshold: " + ", ".join(parts)


def event_line(name: str, entry: dict[str, Any]) -> str:
    """Positives, AUROC / AP / calibration error per scorer, or the refusal."""
    head = f"{name} within 1 s: {entry['positives']} positive of {entry['windows']} windows"
    scores = "; ".join(
        f"{label} AUROC {_fmt(entry[key]['auroc'])} AP {_fmt(entry[key]['ap'])} "
        f"ECE {_fmt(entry[key].get('calibration_error'))}"
        for key, label in EVENT_LABELS.items()
    )
    if "refused" in entry:
        return f"{head}; {entry['refused']}; ECE " + ", ".join(
            f"{label} {_fmt(entry[key].get('calibration_error'))}" for key, label in EVENT_LABELS.items()
        )
    return f"{head}; {scores}"


def summary_lines(report: dict[str, Any], channels: tuple[str, ...] = SUMMARY_CHANNELS) -> list[str]:
    """Human-readable lines of a report: per horizon camera, BEV channels and progress; then the events."""
    lines = [f"{report['sequences']} windows, context {report['context']} steps, horizon {report['horizon']} steps"]
    for steps, entry in report["horizons"].items():
        lines.append(f"horizon {steps} steps ({entry['seconds']:g} s, {entry.get('windows', report['sequences'])} windows):")
        if "camera" in entry:
            lines.append("  camera " + camera_line(entry["camera"]))
        for name in channels:
            if "bev" in entry and name in entry["bev"]:
                lines.append("  bev " + bev_line(name, entry["bev"][name]))
        progress = entry["progress_mae_m"]
        lines.append(f"  progress MAE mode {progress['mode']:.2f} m, sample {progress['sample']:.2f} m")
    for name, entry in report["events_within_1s"].items():
        lines.append(event_line(name, entry))
    return lines


def key_figures(report: dict[str, Any], steps: str = "20") -> list[tuple[str, str]]:
    """(label, value) rows of the headline figures at one horizon (default 1 s), for summary tables."""
    rows: list[tuple[str, str]] = []
    entry = report.get("horizons", {}).get(steps)
    if entry is None:
        return rows
    seconds = f"{entry['seconds']:g} s"
    camera = entry.get("camera")
    if camera:
        rows.append(
            (
                f"world model, camera PSNR at {seconds} [dB]",
                f"mode {camera['mode']['psnr']:.2f}, sample {camera['sample']['psnr']:.2f}, "
                f"posterior {camera['posterior']['psnr']:.2f} (copy-last {camera['copy_last']['psnr']:.2f})",
            )
        )
        rows.append(
            (
                f"world model, camera SSIM at {seconds}",
                f"mode {camera['mode']['ssim']:.3f} (copy-last {camera['copy_last']['ssim']:.3f})",
            )
        )
    vehicles = entry.get("bev", {}).get("vehicles")
    if vehicles and vehicles["mode"].get("positives"):
        rows.append(
            (
                f"world model, BEV vehicle F1 (best threshold) at {seconds}",
                f"mode {vehicles['mode']['f1_best']:.3f}, posterior {vehicles['posterior']['f1_best']:.3f} "
                f"(const-pos {vehicles['constant_position']['f1_best']:.3f}, "
                f"const-vel {vehicles['constant_velocity']['f1_best']:.3f})",
            )
        )
    for name, event in report.get("events_within_1s", {}).items():
        if "refused" in event:
            value = f"{event['positives']} positives: AUROC not reported (< 20)"
        else:
            value = (
                f"AUROC {_fmt(event['mode']['auroc'])} (speed-distance {_fmt(event['speed_distance']['auroc'])}), "
                f"ECE {_fmt(event['mode']['calibration_error'])}; {event['positives']} positives"
            )
        rows.append((f"world model, {name} within 1 s", value))
    return rows


def write_plots(report: dict[str, Any], out_dir: Path) -> list[Path]:
    """Camera MSE per imagined step and BEV vehicle F1 per horizon against the baselines, as PNGs."""
    from matplotlib.figure import Figure  # no pyplot: writing files must not switch the caller's backend

    paths = []
    curves = report.get("curves", {})
    dt_s = report.get("dt_s", 0.05)
    if "camera_mse_mode" in curves:
        fig = Figure(figsize=(5, 3.5))
        ax = fig.subplots()
        seconds = np.arange(1, len(curves["camera_mse_mode"]) + 1) * dt_s
        for name, label, style in (
            ("camera_mse_mode", "world model (mode)", "-"),
            ("camera_mse_sample", "world model (sample)", "-"),
            ("camera_mse_copy_last", "copy last frame", "--"),
        ):
            ax.plot(seconds, curves[name], label=label, linestyle=style)
        ax.set(xlabel="prediction horizon [s]", ylabel="camera MSE", title="Open-loop camera prediction")
        ax.legend()
        fig.tight_layout()
        paths.append(out_dir / "camera_mse.png")
        fig.savefig(paths[-1], dpi=100)
    horizons = report.get("horizons", {})
    first = next(iter(horizons.values()), {})
    if first.get("bev", {}).get("vehicles", {}).get("mode", {}).get("positives"):
        fig = Figure(figsize=(5, 3.5))
        ax = fig.subplots()
        seconds = [entry["seconds"] for entry in horizons.values()]
        for predictor in ("mode", "sample", "posterior", "constant_position", "constant_velocity"):
            values = [entry["bev"]["vehicles"][predictor].get("f1_best", np.nan) for entry in horizons.values()]
            ax.plot(seconds, values, marker="o", label=predictor.replace("_", " "))
        ax.set(xlabel="prediction horizon [s]", ylabel="vehicle F1 (best threshold)", title="Open-loop BEV vehicles")
        ax.legend(fontsize=7)
        fig.tight_layout()
        paths.append(out_dir / "bev_vehicle_f1.png")
        fig.savefig(paths[-1], dpi=100)
    return paths


def write_gif(sample: dict[str, dict[str, np.ndarray]], path: Path, sequences: int = 4) -> None:
    """Real frames above the mode rollout's, ``sequences`` windows side by side, as an animated GIF."""
    import imageio.v2 as imageio

    real = frames_to_rgb({k: v[:sequences] for k, v in sample["real"].items()})  # (N, H, h, w, 3)
    predicted = frames_to_rgb({k: v[:sequences] for k, v in sample["predicted"].items()})
    pairs = np.concatenate([real, predicted], axis=-3)  # real above predicted
    frames = np.concatenate(list(pairs), axis=-2)  # sequences side by side: (H, 2h, N*w, 3)
    frames = frames.repeat(2, axis=1).repeat(2, axis=2)
    imageio.mimsave(path, list(frames), duration=0.05, loop=0)
