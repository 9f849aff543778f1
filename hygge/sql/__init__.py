"""Shared pieces of the SQL home and store.

- url.py       a connection URL: dialect, host/port/database, masked errors
- types.py     Arrow <-> SQL types per dialect; exact casts that name the failing column
- base.py      the Session interface every dialect implements
- postgres.py, mysql.py, alchemy.py   one Session per path (ADBC, PyMySQL, SQLAlchemy)
- connect.py   the right Session for a URL
- loaders.py   bulk loading of a flow's batches (parallel COPY, pipelined LOAD DATA)
- tsv.py       Arrow -> LOAD DATA text, column-wise

Imported only when a `type: sql` connector is used, so `import hygge` never loads a driver.
"""
