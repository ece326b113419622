"""``python -m ai4med`` is the same as the ``ai4med`` command."""

from ai4med.cli import main

raise SystemExit(main())
