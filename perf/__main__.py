import sys

from perf.runner import main

sys.exit(main())
