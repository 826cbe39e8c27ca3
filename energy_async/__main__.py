from energy_async.cli import main

raise SystemExit(main())
