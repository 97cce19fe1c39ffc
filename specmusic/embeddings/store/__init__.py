"""Embedding libraries on disk: the file format, sharded folders, an embed run's journal and the
incremental embedding that fills them (the module map is in :mod:`specmusic.embeddings`).

Nothing is imported here: import from the modules (or from :mod:`specmusic.embeddings`, which
re-exports the public names), so that importing one module never imports the whole wing.
"""
