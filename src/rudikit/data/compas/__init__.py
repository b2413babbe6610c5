"""COMPAS (ProPublica, Broward County, Florida): loaders and the case table of the RUDI worked
example, "at the screening after an arrest, will this person commit a felony in the next 12
months?".

Two layouts are read into one :class:`loading.CompasData`:

* the public CSV files (``compas-scores*.csv`` and ``relational_tables/``: ``people``,
  ``jailhistory``, ``prisonhistory``, ``summary``), which hold ONE case per person, the case
  COMPAS screened, with only the first later offence (``r_*``) and the first later violent
  offence (``vr_*``);
* ProPublica's original ``compas.db`` (SQLite: ``people``, ``jailhistory``, ``prisonhistory``,
  ``charge``, ``casearrest``, ``compas``, ``summary``), whose ``charge`` table lists every
  charge, so every later felony is seen.

:func:`table.build_compas_table` turns either into one row per screened case: ``person_id`` (the
``people`` id, which every file shares), ``case_date``, protected columns (``race``, ``sex``;
race only for audits and a with/without-race experiment), COMPAS's ``decile_score`` (a baseline
to beat, never a feature; missing for the 15 people COMPAS did not score), the label and the
features (:func:`features.feature_columns`). ``case_date`` is the current charge's OFFENCE
date, or its ARREST date when the offence date is missing (ProPublica's convention:
``c_days_from_compas`` counts from it); the 22 two-year-file people with no current charge get
their screening date.

The trigger is the screening (``screening_date``, never before ``case_date`` in the files): the
moment a score is produced, and the day after which ProPublica recorded new offences (every
``r_offense_date`` is at least one day after it). Age, jail and prison history are taken at the
start of the screening day: only stays that began before that day count (the current arrest's
booking included, when it began earlier), cut at that day, so nothing after the trigger leaks
in; the current charge and the booking (:func:`features.booking_features`) are what the
screener saw.

Labels (see :func:`labels.felony_labels`):

* ``felony_365``: 1 when a felony (charge degree ``F...``: ``(F3)`` in ``people`` and
  ``compas.db``, ``F`` in ``compas-scores.csv``) of another case falls on day 1..365 after the
  screening, else 0. Excluded, never 0: cases with a prison term starting on day 0..365 after
  the screening (the guide's rule: prison stops offending outside; ``prison_rule`` offers two
  alternatives), cases with under 365 days of follow-up before the data end (censored; the end
  is the last recorded offence) and people with no current charge (no trigger arrest). Counting
  from the screening, not from the offence, matters: new offences were recorded only after the
  screening, so a window opening at the offence date would miss the days up to the screening
  and run short at the end. ``max_screening_gap_days`` optionally drops cases screened long
  after their charge (ProPublica's 30-day data-quality filter, by default off, as in the
  two-year file).
* ``two_year_recid``: ProPublica's label from ``compas-scores-two-years.csv`` (7,214 people),
  unchanged. Without that file (``compas.db``) it is derived: a new offence 1..730 days after
  the screening, censored when the screening is under 730 days before the data end.

Limitation of the CSV layout: only the first new offence and the first violent one are on
file, so a felony after a first non-violent misdemeanour is missed and ``felony_365``
undercounts (base rate about 8%; the guide, using every arrest in ``compas.db``, had 27%); its
``charge`` table has every charge.
"""
