"""Recommending from embedding libraries: the :class:`~specmusic.embeddings.search.recommender.Recommender`
protocol, its two implementations (in memory, sharded), the search space, explanations and query
resolution (the module map is in :mod:`specmusic.embeddings`).

Nothing is imported here: import from the modules (or from :mod:`specmusic.embeddings`, which
re-exports the public names), so that importing one module never imports the whole wing.
"""
