import sys

from tr2_core.cli import main

sys.exit(main())
