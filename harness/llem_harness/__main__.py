from llem_harness.cli import main

raise SystemExit(main())
