"""``python -m specmusic.models.zoo --bundle …``: rebuild the bundled networks (:mod:`specmusic.models.zoo.rebuild`)."""

import sys

from specmusic.models.zoo.rebuild import main

sys.exit(main())
