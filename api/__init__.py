"""The HTTP edge (`spotify-sync serve`): search, songs, health, readiness and metrics. Thin like
cli/: it parses, calls pipeline/ (the search rules, the store, the Spotify client) and answers.

    app.py          create_app(settings): routes, error handlers, the request middleware
    auth.py         bearer tokens from API_TOKENS, compared in constant time
    errors.py       every error as {"error": {"status", "message"}}, naming the parameter
    enrichment.py   asking Spotify within SEARCH_ENRICH_WAIT, in the background past it
    cache.py        Spotify's search answers in Redis (fresh POPULARITY_TTL, kept TRACK_TTL)
    circuit.py      a circuit breaker shared by every instance through Redis
    metrics.py      Prometheus metrics and the /metrics exposition (multiprocess aware)
"""
