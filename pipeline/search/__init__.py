"""Search's pure core: how text is folded (`normalize`), how a query is read (`query`) and how
matches are ranked (`ranking`). No I/O: the SQL in pipeline/store/search.py mirrors these rules
(its fold function is tested against `normalize.fold` on real PostgreSQL)."""
