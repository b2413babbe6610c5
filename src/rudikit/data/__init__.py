"""Reading, checking and unifying the project's sources.

:data:`MISSING_GROUP` is here, the lowest layer that speaks of values, so that every layer above
(split groups, monitored segments and drift buckets, fairness groups) labels a missing value the
same way."""

#: The label of the group (segment, bucket) that a missing value forms: never dropped.
MISSING_GROUP = "(missing)"
