"""specmusic: music machine learning on spectrograms, from the command line."""

__version__ = "0.1.0"
