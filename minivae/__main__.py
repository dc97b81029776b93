"""`python -m minivae ...`: the same command line as `minivae ...`."""

import sys

from minivae.cli import main

if __name__ == "__main__":
    sys.exit(main())
