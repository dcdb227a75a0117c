import sys

from galaxy_spark.commands import main

sys.exit(main())
