"""The store layer: every SQL statement and every transaction of the pipeline, one module a table
family (ledger, songs, connections, capabilities, readers, search). Callers get plain values and
StoreError (pipeline/errors.py); they never hold a session. How transactions, the database clock
and error translation work: `pipeline/store/db.py`."""
