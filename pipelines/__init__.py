"""LivePerson Chat Agent API ETL: the library (``liveperson``, ``storage``) and its Dagster wiring."""
