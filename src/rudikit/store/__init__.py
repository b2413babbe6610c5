"""The results store. Importing the package registers every table on the shared metadata
(results and production), so ``metadata`` users see the whole schema."""

import rudikit.store.list_tables  # noqa: F401
import rudikit.store.monitoring_tables  # noqa: F401
from rudikit.store import production_tables, tables  # noqa: F401
