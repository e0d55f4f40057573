"""`python3 -m maildir_train` is `maildir-train`."""

import sys

from .service import main

sys.exit(main())
