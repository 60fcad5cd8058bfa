from flowspec.reference import main

raise SystemExit(main())
