"""Task containers shared by the datasets, the algorithms and the training loop."""

from typing import NamedTuple

import numpy as np


class Task(NamedTuple):
    """One few-shot task; with a leading [meta_batch] axis it is a batch of tasks.

    Classification: x is [ways*shots, H, W, C] (support) / [ways*queries, H, W, C]
    (query) and y holds int32 class ids in [0, ways). Regression: x is [K, in_dim],
    y is [K, out_dim] float32.
    """

    support_x: np.ndarray  # [(meta_batch,) n_support, *input_shape]
    support_y: np.ndarray  # [(meta_batch,) n_support(, out_dim)]
    query_x: np.ndarray  # [(meta_batch,) n_query, *input_shape]
    query_y: np.ndarray  # [(meta_batch,) n_query(, out_dim)]
