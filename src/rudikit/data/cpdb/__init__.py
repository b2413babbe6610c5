"""Chicago police data (Invisible Institute CPDB): loaders, officer linking and tidy event tables.

The public CPDB export gives every dataset its own officer id (``TRR-officers_..._ID``,
``complaints-accused_..._ID``, ``unit-history_..._ID``); only ``final-profiles`` carries the
cross-dataset ``UID``, and no file maps one to the other. So officers are linked here by
normalised name plus appointed date and birth year, with fallbacks, and a link is accepted only
when exactly one roster officer fits: a wrong link would give one officer another's complaints,
which is worse for an early intervention system than a missing one.

Names are read only to link. Every table this module returns is keyed by ``officer_uid`` and
holds no name column. Everything is read as text with pyarrow (the whole load and link takes a
few seconds) and typed here, because the raw files mix ``7`` and ``7.0``, ``Sustained`` and
``SUSTAINED``, and ids such as ``2019-0000001`` next to ``258960``.
"""
