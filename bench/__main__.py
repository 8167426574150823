"""python -m bench [--quick] [--out DIR] ...: see bench.run."""

import sys

from bench.run import main

sys.exit(main())
