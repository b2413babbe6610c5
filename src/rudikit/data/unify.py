"""Unification: every ``data.sources`` entry of a case project loaded into one table."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from rudikit.data.sources import LoadedSource, load_source
from rudikit.project import Project


def unify(project: Project, project_dir: Path) -> tuple[pd.DataFrame, list[LoadedSource]]:
    """Load every source; stack them when they share a layout (e.g. several police.uk feeds)."""
    loaded = [load_source(s, project_dir, f"data.sources[{i}]")
              for i, s in enumerate(project.data.sources)]
    frame = pd.concat([s.frame for s in loaded], ignore_index=True) if len(loaded) > 1 \
        else loaded[0].frame
    return frame, loaded
