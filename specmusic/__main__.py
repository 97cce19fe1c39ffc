"""``python -m specmusic``."""

from specmusic.cli.app import main

if __name__ == "__main__":
    main()
