"""python -m fastnn.predict: see fastnn.predict.command."""

import sys

from fastnn.predict.command import main

sys.exit(main())
