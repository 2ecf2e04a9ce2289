import sys

from retrofit.cli import main

sys.exit(main())
