from signalbridge_agent.cli import main

raise SystemExit(main())
