"""Shared pieces of the SQL home and store.

- url.py       a connection URL: dialect, host/port/database, masked errors
- types.py     Arrow <-> SQL types per dialect; exact casts that name the failing column
- base.py      the Session interface, and the SQL that publishes a load in standard SQL
- postgres.py, mysql.py, alchemy.py   one Session per path (ADBC, PyMySQL, SQLAlchemy; SQLite);
               each overrides the SQL its database spells differently (merge, rename, alter)
- connect.py   the right Session for a URL
- load_plan.py what a load creates, alters or refuses (pure: no connection)
- loaders.py   bulk loading of a flow's batches (parallel COPY, pipelined LOAD DATA)
- faults.py    one answer to "transient?" for every SQL path; driver messages, masked, clipped
- state_table.py  incremental state in the `_hygge_state` table of the target database
- cursor.py    the SQL home's incremental cursor
- tsv.py       Arrow -> LOAD DATA text, column-wise

Imported only when a `type: sql` connector is used, so `import hygge` never loads a driver.
"""
