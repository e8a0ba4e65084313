from trade_pipeline.cli import main

raise SystemExit(main())
