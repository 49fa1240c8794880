from maml.cli import main

raise SystemExit(main())
