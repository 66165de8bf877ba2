"""`python -m warmd` runs the `warmd` command line."""

from warmd.cli.warmd import main

raise SystemExit(main())
