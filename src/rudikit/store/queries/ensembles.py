"""The members of stored ensemble models (``algorithm: ensemble``)."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
from sqlalchemy import select

from rudikit.store import tables as t
from rudikit.store.queries.common import Bind, frame

E, M = t.ensemble_members, t.models


def ensemble_members(bind: Bind, ensemble_model_ids: Sequence[int]) -> pd.DataFrame:
    """ensemble_model_id, position, member_model_id, member_group_id and chosen_by of each
    member of these ensemble models, in each ensemble's order (no rows for a model that is
    not an ensemble)."""
    return frame(bind, select(E.c.ensemble_model_id, E.c.position, E.c.member_model_id,
                              M.c.model_group_id.label("member_group_id"), E.c.chosen_by)
                 .join(M, M.c.id == E.c.member_model_id)
                 .where(E.c.ensemble_model_id.in_([int(i) for i in ensemble_model_ids]))
                 .order_by(E.c.ensemble_model_id, E.c.position), keep_columns=True)
