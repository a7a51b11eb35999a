"""Shared look of the report's figures: colours by thread count, labels, axis units, saving."""

from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # the report never opens a window

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator  # noqa: E402

EPOCH_FRAMES = 4_000_000  # the paper: one epoch = 4M frames summed over threads
MIN_EPOCHS = 2.0  # shorter suites are drawn against plain frames
OVERSUB_MARK = "\u2020"  # dagger after a thread count that had more threads than physical cores
OVERSUB_NOTE = f"{OVERSUB_MARK} more threads than the host's physical cores (oversubscribed)"
VIRTUAL_NOTE = ("(virtual): N actor-learners run in one process in the order N cores would apply their updates; "
                "their time and frames/s are the virtual clock's, what N cores would take under the run's time model "
                "(config.json time_model), not this machine's. (sync): N environments in lockstep, one update a round.")


def any_virtual(names) -> bool:
    return any(split_method(n)[1] in ("virtual", "sync") for n in names)

ALGORITHM_LABELS = {
    "one_step_q": "1-step Q",
    "one_step_sarsa": "1-step SARSA",
    "n_step_q": "n-step Q",
    "a3c": "A3C",
    "a3c_lstm": "A3C LSTM",  # the paper's name (Table 1, Fig. 1)
}
OPTIMIZER_LABELS = {
    "shared_rmsprop": "Shared RMSProp",
    "rmsprop": "RMSProp (per-thread statistics)",
    "momentum_sgd": "Momentum SGD",
}
GAME_TITLES = {"BeamRider": "Beam Rider", "Qbert": "Q*bert", "SpaceInvaders": "Space Invaders"}


#: the report's methods are algorithms under a schedule: "a3c" (Hogwild, the paper's), "a3c/virtual",
#: "a3c/sync" (scores.run_table)
SCHEDULE_SEP = "/"
SCHEDULE_LABELS = {"virtual": "virtual", "sync": "sync"}
SCHEDULE_ORDER = ("hogwild", "virtual", "sync")


def split_method(name: str) -> tuple[str, str]:
    """``("a3c", "sync")`` of ``"a3c/sync"``; ``(name, "hogwild")`` of a plain algorithm name."""
    base, _, schedule = name.partition(SCHEDULE_SEP)
    return base, schedule or "hogwild"


def algorithm_order(names) -> list[str]:
    """The paper's order (1-step Q, 1-step SARSA, n-step Q, A3C, A3C LSTM), then any others alphabetically;
    each algorithm's schedules after it (Hogwild, virtual, sync)."""
    order = list(ALGORITHM_LABELS)

    def key(a):
        base, schedule = split_method(a)
        rank = SCHEDULE_ORDER.index(schedule) if schedule in SCHEDULE_ORDER else len(SCHEDULE_ORDER)
        return (order.index(base) if base in order else len(order), base, rank, schedule)

    return sorted(set(names), key=key)


def algorithm_label(name: str) -> str:
    base, schedule = split_method(name)
    label = ALGORITHM_LABELS.get(base, base)
    return label if schedule == "hogwild" else f"{label} ({SCHEDULE_LABELS.get(schedule, schedule)})"


def optimizer_label(name: str) -> str:
    return OPTIMIZER_LABELS.get(name, name)


def game_title(name: str) -> str:
    return GAME_TITLES.get(name, name)


def set_theme() -> None:
    sns.set_theme(context="paper", style="whitegrid", font_scale=1.1)
    plt.rcParams.update({"figure.dpi": 110, "savefig.dpi": 130, "axes.titleweight": "bold",
                         "legend.framealpha": 0.9, "pdf.fonttype": 42})


class ThreadColours:
    """One colour per thread count, the same in every figure of a report."""

    def __init__(self, threads) -> None:
        self.threads = sorted({int(t) for t in threads})
        palette = sns.color_palette("colorblind", max(len(self.threads), 1))
        if len(self.threads) > len(palette):
            palette = sns.color_palette("husl", len(self.threads))
        self.map = {t: palette[i] for i, t in enumerate(self.threads)}

    def __call__(self, threads: int):
        return self.map.get(int(threads), (0.3, 0.3, 0.3))


def thread_label(threads: int, n_runs: int | None = None, oversubscribed: bool = False) -> str:
    text = f"{threads} thread{'s' if threads != 1 else ''}{OVERSUB_MARK if oversubscribed else ''}"
    return text if n_runs is None else f"{text} (n={n_runs})"


def frame_axis(max_frames: float, epoch_frames: int = EPOCH_FRAMES) -> tuple[float, str]:
    """``(divisor, label)`` for a frame axis: epochs of 4M frames when the runs are long enough,
    otherwise millions or thousands of frames (always summed over threads)."""
    if max_frames >= MIN_EPOCHS * epoch_frames:
        return float(epoch_frames), f"training epochs ({epoch_frames / 1e6:g}M frames each)"
    if max_frames >= 1e6:
        return 1e6, "training frames (millions)"
    if max_frames >= 1e4:
        return 1e3, "training frames (thousands)"
    return 1.0, "training frames"


def time_axis(max_seconds: float) -> tuple[float, str]:
    if max_seconds >= 2 * 3600:
        return 3600.0, "wall-clock time (hours)"
    if max_seconds >= 120:
        return 60.0, "wall-clock time (minutes)"
    return 1.0, "wall-clock time (seconds)"


def panel_grid(n_rows: int, n_cols: int, width: float = 3.6, height: float = 2.9, **kw):
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(max(width * n_cols, 6.0), height * n_rows + 0.9),
                             squeeze=False, **kw)
    return fig, axes


def finish(fig: Figure, title: str, notes: list[str] | None = None, extra_bottom: float = 0.0) -> Figure:
    """Title, footnotes (wrapped to the figure's width) and layout.  ``extra_bottom`` (inches)
    reserves room above the footnotes, e.g. for a figure legend placed there."""
    fig.suptitle(title, fontsize=13, fontweight="bold")
    width_chars = int(fig.get_figwidth() * 15)  # ~15 characters per inch at 8 pt
    lines = [w for note in (notes or []) for w in textwrap.wrap(note, width_chars)]
    if lines:
        fig.text(0.01, 0.005, "\n".join(lines), ha="left", va="bottom", fontsize=8, color="0.25")
    notes_height = 0.135 * len(lines) + 0.08 if lines else 0.0
    height = fig.get_figheight()
    bottom = min((notes_height + extra_bottom) / height, 0.45)
    top = 1.0  # tight_layout makes room for the suptitle itself
    fig.tight_layout(rect=(0, bottom, 1, top))
    # tight_layout leaves a placeholder layout engine behind, and with any engine set savefig lays
    # the whole figure out once more per format before drawing it: the same pixels, a fifth slower
    fig.set_layout_engine(None)
    return fig


def bottom_legend(fig: Figure, handles, notes: list[str], ncol: int = 4) -> float:
    """A figure legend between the panels and the footnotes; returns the inches it needs."""
    width_chars = int(fig.get_figwidth() * 15)
    n_lines = sum(len(textwrap.wrap(n, width_chars)) for n in notes)
    notes_height = 0.135 * n_lines + 0.08 if n_lines else 0.0
    fig.legend(handles=handles, loc="lower center", fontsize=8, ncol=min(len(handles), ncol), frameon=False,
               bbox_to_anchor=(0.5, (notes_height + 0.02) / fig.get_figheight()))
    return 0.25 * -(-len(handles) // ncol) + 0.1


def panel_layout(algorithms: list[str], games: list[str], max_cols: int = 4):
    """Where each (algorithm, game) panel goes: rows = algorithms, columns = games, as in the paper;
    with a single game the algorithms are laid out side by side instead (at most ``max_cols`` a row).
    Returns ``(n_rows, n_cols, {(algorithm, game): (row, col)})``."""
    if len(games) == 1 and len(algorithms) > 1:
        n_cols = min(max_cols, len(algorithms))
        n_rows = -(-len(algorithms) // n_cols)
        return n_rows, n_cols, {(a, games[0]): divmod(i, n_cols) for i, a in enumerate(algorithms)}
    return (max(len(algorithms), 1), max(len(games), 1),
            {(a, g): (r, c) for r, a in enumerate(algorithms) for c, g in enumerate(games)})


def is_bottom(pos: dict, row: int, col: int) -> bool:
    """No panel below this one in its column (that panel carries the x label)."""
    return not any(c == col and r > row for r, c in pos.values())


def save(fig: Figure, directory: Path, name: str, formats=("png", "pdf")) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in formats:
        path = directory / f"{name}.{fmt}"
        fig.savefig(path)  # finish() already laid the figure out
        paths.append(path)
    plt.close(fig)
    return paths


def plain_log_axis(axis, decimal: bool = False) -> None:
    """Tick labels of a log axis as plain numbers (8, 16, 3000), not powers; ``decimal`` puts
    ticks at 1, 2 and 5 times the powers of ten."""
    if decimal:
        axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(FuncFormatter(lambda v, _: ""))


def log2_threads_axis(ax, threads) -> None:
    threads = sorted({int(t) for t in threads})
    ax.set_xscale("log", base=2)
    ax.set_xticks(threads)
    plain_log_axis(ax.xaxis)
    if threads:
        ax.set_xlim(min(threads) / 1.3, max(threads) * 1.3)


def no_data(ax, text: str = "no runs with data") -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="0.4")
    ax.set_axis_off()  # not set_xticks([]): that would strip the ticks of every axis shared with it


def finite(values) -> np.ndarray:
    values = np.asarray(values, dtype=float)
    return values[np.isfinite(values)]
