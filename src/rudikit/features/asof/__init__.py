"""As-of-date features and labels for entities with event histories (officers, here), in DuckDB.

A row is one (officer, as-of date): what a supervisor could have known at the start of that day.
Features only read events dated strictly before the as-of date, as in triage; labels read the
window that starts on it, ``[as_of, as_of + window)``, so no event is both a feature and a label.
Attributes that are settled later are masked until then: a complaint counts from its complaint
date, but its finding is ``open_unknown`` until its closing date has passed.

Features are declared, not coded: an :class:`~rudikit.features.asof.specs.EventSpec` names a
table, its date column, the windows and the categories or flags to count, and one SQL generator
serves every event table. Each block is cached as Parquet in a folder named by the SHA-256 of the
spec, the as-of dates and fingerprints of the tables it reads, so a rerun with the same inputs
reads the file and a changed input (one more complaint) recomputes.

The modules, from declaration to result:

* :mod:`.specs` - what a feature block, a state, the cohort and a label are (the declarations);
* :mod:`.defaults` - the rudikit EIS declarations over the Chicago CPDB tables;
* :mod:`.sql` - the DuckDB queries generated from the declarations;
* :mod:`.duck` - a DuckDB connection over the input frames;
* :mod:`.cohort` - the as-of dates and who is scored on each;
* :mod:`.cache` - the Parquet cache of computed blocks;
* :mod:`.build` - the feature matrix, block by block;
* :mod:`.labels` - the labels and their rates.
"""
